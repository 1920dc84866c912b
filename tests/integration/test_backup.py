"""Backups end to end with the real binary: base backups and the server's journal archive,
point-in-time restore of a database (equal to the state at each moment, item by item), restore
of one account into its live mailbox (twice: no duplicates), kill -9 during a backup and a
copy, injected damage in a repository (named by verify, survived by a restore through another
tier, fixed by repair), a corrupt database (the backup fails and names it, health goes
critical), and the S3 tier against an S3 server from npm."""

import glob
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time

import harness as h
from imap_client import Imap, deliver, msg, wait_for
from s3_server import s3_server

DOMAIN = "backup.test"
ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"


def iso_now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def big_body(n, seed):
    """A body of n bytes that does not compress (so packs fill up)."""
    out, x = bytearray(), seed * 2654435761 % 2**32
    while len(out) < n:
        x = (x * 1103515245 + 12345) % 2**31
        out += f"{x:08x}".encode()
        if len(out) % 76 < 8:
            out += b"\r\n"
    return out[:n].decode()


def parse_size(text):
    number, unit = text.split()
    return float(number) * {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}[unit]


class BackupTest(h.MailarkTestCase):

    # ---------------------------------------------------------------- helpers

    def instance(self, name, users=(ALICE, BOB), start=True, extra=""):
        inst = h.Instance(name)
        inst.set_option("backup", "archive_interval", '"100ms"')
        inst.set_option("backup", "base_interval", '"off"')
        if extra:
            with open(inst.config, "a") as f:
                f.write("\n" + extra + "\n")
        inst.add_tenant(DOMAIN)
        for u in users:
            inst.add_user(u)
        if start:
            inst.start()
        return inst

    def ports(self, inst):
        with open(inst.ports_file) as f:
            return json.load(f)

    def imap(self, inst, user=ALICE):
        c = Imap(self.ports(inst)["imap"])
        c.login(user, "secret-pw")
        return c

    def dump(self, inst, db="db1"):
        d = json.loads(inst.cli("db", "dump", db).out)
        d.pop("database")
        return d

    def wait_archived(self, inst, db="db1"):
        def done():
            r = inst.cli("health", "--json", expect=None)
            d = json.loads(r.out)["databases"][db]
            return d["archived_seq"] == d["journal_seq"]
        self.assertTrue(wait_for(done, timeout=20, interval=0.1),
                        inst.cli("health", "--json", expect=None).out + inst.log_tail())

    def assertRestoresAs(self, inst, want, into, what):
        """restore --db db1 (newest state) into `into` equals `want` item by item."""
        inst.cli("restore", "--db", "db1", "--into", into)
        self.assertSameState(want, self.dump(inst, into), what)

    def assertSameState(self, want, got, what):
        if want != got:
            for a, b in zip(json.dumps(want, indent=1).splitlines(),
                            json.dumps(got, indent=1).splitlines()):
                if a != b:
                    self.fail(f"{what}: first difference: {a.strip()} != {b.strip()}")
            self.fail(f"{what}: states differ in length")

    def pack_files(self, repo_dir):
        return sorted(glob.glob(os.path.join(repo_dir, "packs", "*", "*")))

    def flip_byte(self, path, offset):
        with open(path, "r+b") as f:
            f.seek(offset)
            b = f.read(1)
            f.seek(offset)
            f.write(bytes([b[0] ^ 0x5A]))

    def add_mirror(self, inst):
        with open(inst.config, "a") as f:
            f.write('\n[[repository]]\nname = "mirror"\ntype = "local"\npath = "mirror"\n')

    # ---------------------------------------------------------------- point in time

    def test_restore_at_several_times_equals_the_state_then(self):
        inst = self.instance("pitr")
        lmtp = inst.port
        for i in range(5):
            deliver(lmtp, ALICE, msg(f"a{i}", body=f"alice {i}\r\n"))
        deliver(lmtp, BOB, msg("b0"))
        inst.cli("backup", "run", "--quiet")
        checkpoints = []

        def checkpoint():
            self.wait_archived(inst)
            time.sleep(0.05)
            checkpoints.append((iso_now(), self.dump(inst)))
            time.sleep(0.05)

        checkpoint()
        c = self.imap(inst)
        c.must("CREATE Projects")
        c.select("INBOX")
        c.must("UID COPY 1:2 Projects")
        c.must("UID MOVE 3 Archive")
        c.must("UID STORE 1 +FLAGS (\\Seen $Work)")
        checkpoint()
        c.must("UID STORE 4 +FLAGS (\\Deleted)")
        c.must("EXPUNGE")
        c.must("RENAME Projects Work/Projects")
        deliver(lmtp, ALICE, msg("later", body=big_body(90_000, 7)))  # a blob file
        checkpoint()
        inst.cli("backup", "run", "--quiet")  # a second base backup between restore points
        c.must("DELETE Work/Projects")
        c.select("INBOX")
        c.must("UID STORE 1:* -FLAGS (\\Seen)")
        c.append("Sent", msg("sent"), flags="\\Seen")
        c.logout()
        deliver(lmtp, BOB, msg("b1"))
        checkpoint()
        for n, (t, want) in enumerate(checkpoints):
            r = inst.cli("restore", "--db", "db1", "--time", t, "--into", f"at{n}")
            self.assertIn("restored database db1 into", r.out)
            self.assertSameState(want, self.dump(inst, f"at{n}"), f"restore at {t}")
            inst.cli("check", "--db", f"at{n}")
        # The default is the newest archived moment; --seq picks an exact record.
        self.assertRestoresAs(inst, self.dump(inst), "latest", "latest restore")
        seq = checkpoints[1][1]["seq"]
        inst.cli("restore", "--db", "db1", "--seq", str(seq), "--into", "byseq")
        self.assertSameState(checkpoints[1][1], self.dump(inst, "byseq"), "restore by seq")
        # The key can be printed for safekeeping, and it is the key the repository uses.
        with open(os.path.join(inst.data, "backup.key")) as f:
            key = f.read().strip()
        self.assertIn(key, inst.cli("backup", "key", "export").out)
        self.assertEqual(oct(os.stat(os.path.join(inst.data, "backup.key")).st_mode & 0o777), "0o600")
        # A recovery database is never routed: the directory does not list it.
        self.assertNotIn("latest", inst.cli("db", "list").out)
        # Dry run: counts, nothing written.
        r = inst.cli("restore", "--db", "db1", "--into", "never", "--dry-run")
        self.assertIn("would restore", r.out)
        self.assertFalse(os.path.exists(inst.db_dir("never")))
        # Refusals: an existing target, a time before anything, bad arguments.
        for args, text in (
                (["--db", "db1", "--into", "latest"], "exists"),
                (["--db", "db1", "--into", "x1", "--time", "2001-01-01T00:00:00Z"], "nothing"),
                (["--db", "db1"], "--into"),
                (["--db", "db1", "--into", "x2", "--time", "yesterday"], "cannot read time"),
                (["--user", ALICE, "--into", "x3"], "--into goes with --db")):
            r = inst.cli("restore", *args, expect=None)
            self.assertNotEqual(r.rc, 0, str(r))
            self.assertIn(text, r.err, str(r))
            self.assertEqual(len(r.err.strip().splitlines()), 1, str(r))

    def test_server_schedules_base_backups_and_reports_health(self):
        inst = self.instance("scheduled", start=False)
        inst.set_option("backup", "base_interval", '"2s"')
        r = inst.cli("health", "--json", expect=2)  # nothing backed up yet: never silent
        self.assertIn("no base backup has ever succeeded", inst.cli("health", expect=2).out)
        inst.start()
        deliver(inst.port, ALICE, msg("scheduled"))
        def listed():
            return inst.cli("backup", "list").out.count(" verified") >= 1
        self.assertTrue(wait_for(listed, timeout=30, interval=0.5), inst.log_tail())
        self.wait_archived(inst)
        r = inst.cli("health", "--json")
        j = json.loads(r.out)
        self.assertEqual(j["status"], "ok", r.out)
        self.assertLess(j["databases"]["db1"]["last_backup_age_s"], 60)
        self.assertIn("db1", j["repositories"]["local"]["newest_restore_point_ms"])
        self.assertTrue(inst.cli("health").out.startswith("OK"))

    def test_prune_keeps_what_restore_points_need(self):
        inst = self.instance("prune")
        for n in range(4):
            for i in range(3):
                deliver(inst.port, ALICE, msg(f"p{n}-{i}", body=big_body(30_000, n * 10 + i)))
            c = self.imap(inst)
            c.select("INBOX")
            c.must("UID STORE 1:* +FLAGS (\\Deleted)")
            c.must("EXPUNGE")  # the old bodies are only in old backups now
            c.logout()
            # Full backups: an incremental one would keep the journal since its full one,
            # and with it every body that was expunged since.
            inst.cli("backup", "run", "--quiet", "--full")
            time.sleep(0.05)
        deliver(inst.port, ALICE, msg("after the last backup"))
        self.wait_archived(inst)
        inst.stop()
        want = self.dump(inst)
        inst.set_option("backup.retention", "keep_last", "1")
        for k in ("keep_hourly", "keep_daily", "keep_weekly", "keep_monthly"):
            inst.set_option("backup.retention", k, "0")
        repo = os.path.join(inst.data, "backup")
        packs_before = len(self.pack_files(repo))
        r = inst.cli("backup", "prune", "--dry-run")
        self.assertIn("1 base backups kept, 3 to remove", r.out)
        self.assertEqual(len(self.pack_files(repo)), packs_before)
        segments_before = glob.glob(os.path.join(repo, "journal", "*", "*"))
        self.assertGreater(len(segments_before), 2)
        r = inst.cli("backup", "prune")
        self.assertIn("1 base backups kept, 3 removed", r.out)
        self.assertLess(len(self.pack_files(repo)), packs_before)
        # Compaction: the archive's small segments, packs and index files are merged.
        self.assertEqual(len(glob.glob(os.path.join(repo, "journal", "*", "*"))), 1, r.out)
        self.assertEqual(len(glob.glob(os.path.join(repo, "index", "*"))), 1)
        with open(os.path.join(repo, "locks", "prune")) as f:
            self.assertEqual(json.load(f)["state"], "done")
        inst.cli("backup", "verify", "--read-data")
        self.assertRestoresAs(inst, want, "afterprune", "restore after prune")
        self.assertEqual(inst.cli("backup", "list").out.count(" verified"), 1)
        # The archive goes on after the pruned range: only the new record is shipped.
        inst.start()
        deliver(inst.port, ALICE, msg("after the prune"))
        self.wait_archived(inst)
        segments = sorted(os.path.basename(p)
                          for p in glob.glob(os.path.join(repo, "journal", "*", "*")))
        self.assertEqual(len(segments), 2, segments)
        self.assertEqual(int(segments[1].split("-")[0]), int(segments[0].split("-")[1]) + 1)
        # A kept incremental backup keeps the full one it builds on, and the journal between.
        for n in range(2):
            deliver(inst.port, ALICE, msg(f"incremental {n}"))
            self.assertIn("; incremental on full backup", inst.cli("backup", "run").out)
        self.wait_archived(inst)
        want = self.dump(inst)
        r = inst.cli("backup", "prune")
        self.assertIn("2 base backups kept, 1 removed", r.out)
        listed = inst.cli("backup", "list").out
        self.assertEqual(listed.count(" verified"), 2, listed)
        self.assertEqual(listed.count("incr. on "), 1, listed)
        inst.cli("backup", "verify", "--read-data")
        self.assertRestoresAs(inst, want, "afterprune2", "restore of an incremental")

    def test_incremental_backups_follow_the_journal_and_need_their_full_one(self):
        inst = self.instance("incremental")
        for i in range(4):
            deliver(inst.port, ALICE, msg(f"m{i}", body=f"body {i}\r\n"))
        r = inst.cli("backup", "run")
        self.assertIn("; full (no earlier full backup in local)\n", r.out)
        full_id = re.search(r"base backup (\w+) at journal", r.out).group(1)
        states = []
        for n in range(2):
            c = self.imap(inst)
            c.select("INBOX")
            c.must(f"UID STORE {n + 1} +FLAGS (\\Seen)")
            c.must(f"UID MOVE {n + 2} Archive")
            c.logout()
            deliver(inst.port, BOB, msg(f"b{n}", body=big_body(90_000, n)))  # a blob file
            r = inst.cli("backup", "run")
            m = re.search(r"base backup (\w+) at journal (\d+) in local: 2 accounts, (\d+) items, "
                          r".*; incremental on full backup (\w+) at journal", r.out)
            self.assertIsNotNone(m, r.out)
            self.assertEqual(m.group(4), full_id)
            self.assertEqual(int(m.group(3)), 5 + n, r.out)  # counted without reading trees
            states.append((int(m.group(2)), self.dump(inst)))
        # Each incremental backup is a restore point of its own.
        for n, (seq, want) in enumerate(states):
            inst.cli("restore", "--db", "db1", "--seq", str(seq), "--into", f"inc{n}")
            self.assertSameState(want, self.dump(inst, f"inc{n}"), f"incremental {n}")
        # --full, and full_interval: a full backup again.
        self.assertIn("; full (--full)\n", inst.cli("backup", "run", "--full").out)
        inst.stop()
        inst.set_option("backup", "full_interval", '"always"')
        self.assertIn('; full (full_interval is "always")\n', inst.cli("backup", "run").out)
        inst.set_option("backup", "full_interval", '"1d"')
        self.assertIn("; incremental on", inst.cli("backup", "run").out)
        inst.set_option("backup", "full_interval", '"soon"')
        r = inst.cli("backup", "run", expect=None)
        self.assertNotEqual(r.rc, 0)
        self.assertIn("backup.full_interval must be a duration", r.err)
        # The newest full backup is older than full_interval: full again.
        inst.set_option("backup", "full_interval", '"1s"')
        time.sleep(1.2)
        r = inst.cli("backup", "run")
        self.assertIn("; full (the newest full backup is older than full_interval)\n", r.out)
        age_full, full_seq = re.search(r"base backup (\w+) at journal (\d+)", r.out).groups()
        full_seq = int(full_seq)
        inst.set_option("backup", "full_interval", '"1d"')
        # The archive lost the journal just after the newest full backup (its older segments
        # deleted): an incremental backup would not be a restore point, so it is full.
        seqs = []
        for n in range(2):
            inst.start()
            deliver(inst.port, ALICE, msg(f"gap{n}"))
            inst.stop()
            r = inst.cli("backup", "run")
            # On the newest of the full backups at that position.
            self.assertIn(f"; incremental on full backup {age_full}", r.out)
            seqs.append(int(re.search(r"at journal (\d+)", r.out).group(1)))
        [journal_dir] = glob.glob(os.path.join(inst.data, "backup", "journal", "*"))
        for name in os.listdir(journal_dir):
            if int(name.split("-")[0]) <= seqs[0]:
                os.remove(os.path.join(journal_dir, name))
        r = inst.cli("backup", "run")
        self.assertIn(f"; full (the journal archive lacks records {full_seq + 1}..{seqs[0]})\n",
                      r.out)
        want = self.dump(inst)
        self.assertRestoresAs(inst, want, "gap", "restore after the archive gap")
        # Without its full backup an incremental one is not a restore point; the next backup
        # is full, and a restore still works from the journal archive.
        repo = os.path.join(inst.data, "backup")
        [full_file] = glob.glob(os.path.join(repo, "snapshots", full_id + "*"))
        os.remove(full_file)
        listed = inst.cli("backup", "list", expect=None).out
        self.assertIn(f"its full backup {full_id[:12]} is missing", listed)
        want = self.dump(inst)
        self.assertRestoresAs(inst, want, "nofull", "restore without the full backup")

    def test_a_long_journal_since_the_full_backup_makes_the_next_one_full(self):
        """Past max(10000, items) journal records since the newest full backup, replaying
        them would cost more than reading the store again: the backup is full, and says why."""
        inst = self.instance("longjournal", users=(ALICE,))
        for i in range(50):
            deliver(inst.port, ALICE, msg(f"l{i}", body=f"body {i}\r\n"))
        r = inst.cli("backup", "run")
        full_seq = int(re.search(r"base backup \w+ at journal (\d+)", r.out).group(1))

        def journal_seq():
            return int(json.loads(inst.cli("db", "dump", "db1").out)["seq"])

        c = self.imap(inst)
        c.select("INBOX")
        store = ["STORE 1:50 +FLAGS (\\Flagged)", "STORE 1:50 -FLAGS (\\Flagged)"]
        c.must(store[0])
        per_store = journal_seq() - full_seq  # a record per message changed
        self.assertEqual(per_store, 50)
        for n in range(1, 10_000 // per_store + 1):
            c.must(store[n % 2])
        c.logout()
        seq = journal_seq()
        self.assertEqual(seq - full_seq, 10_050)
        r = inst.cli("backup", "run")
        self.assertIn(f"; full ({seq - full_seq} journal records since the newest full backup, "
                      "more than 10000)\n", r.out)
        self.assertRestoresAs(inst, self.dump(inst), "longjournal", "restore after it")

    # ---------------------------------------------------------------- one account

    def test_user_restore_into_live_account_twice_adds_no_duplicates(self):
        inst = self.instance("user")
        for i in range(6):
            deliver(inst.port, ALICE, msg(f"keep{i}", body=f"body {i}\r\n"))
        deliver(inst.port, BOB, msg("bob"))
        inst.cli("backup", "run", "--quiet")
        before = self.dump(inst)
        c = self.imap(inst)
        c.select("INBOX")
        c.must("UID STORE 2,4 +FLAGS (\\Deleted)")
        c.must("EXPUNGE")
        c.must("UID MOVE 5 Trash")
        self.wait_archived(inst)
        r = inst.cli("restore", "--user", ALICE, "--dry-run")  # the newest state: as now
        self.assertIn("total to restore: 0 items", r.out, r.out)
        r = inst.cli("restore", "--user", ALICE, "--seq", str(before["seq"]), "--dry-run")
        self.assertIn("total to restore: 2 items", r.out, r.out)
        after_dry = self.dump(inst)
        # The newest restore point holds the move to Trash but not the expunge (a move keeps
        # the GUID, so only the two expunged messages are missing); the state at the first
        # backup brings back those two and skips the rest.
        self.assertEqual(self.dump(inst), after_dry)
        r = inst.cli("restore", "--user", ALICE, "--seq", str(before["seq"]))
        self.assertIn("total restored: 2 items", r.out, r.out)
        self.assertIn("already present", r.out)
        c.select("INBOX")
        res = c.must("UID SEARCH ALL")
        uids = sorted(int(x) for x in res.lines("SEARCH")[0].split()[2:])
        self.assertEqual(len(uids), 5, res)  # 1,3,6 + two restored with new UIDs
        self.assertGreater(min(uids[-2:]), 6)  # clients saw 2 and 4 go: new UIDs
        r = inst.cli("restore", "--user", ALICE, "--seq", str(before["seq"]))
        self.assertIn("total restored: 0 items", r.out, r.out)
        state = self.dump(inst)
        guids = [it["guid"] for a in state["accounts"] for f in a["folders"] for it in f["items"]
                 if a["address"] == ALICE]
        self.assertEqual(len(guids), len(set(guids)))
        self.assertEqual(len(guids), 6)
        original = {it["guid"] for a in before["accounts"] for f in a["folders"]
                    for it in f["items"] if a["address"] == ALICE}
        self.assertEqual(set(guids), original)  # identity kept
        # One folder into a recovery folder: everything is present already.
        r = inst.cli("restore", "--user", ALICE, "--seq", str(before["seq"]), "--folder", "INBOX",
                     "--into-folder", "Recovered/x")
        self.assertIn("total restored: 0 items", r.out)
        bob_before = [a for a in before["accounts"] if a["address"] == BOB]
        bob_now = [a for a in self.dump(inst)["accounts"] if a["address"] == BOB]
        self.assertEqual(bob_before, bob_now)  # the other account is untouched
        c.logout()

    def test_user_restore_refers_to_held_bodies_and_reads_the_others(self):
        inst = self.instance("held")
        deliver(inst.port, ALICE, msg("small", body="small body\r\n"))
        for n in (1, 2):
            deliver(inst.port, ALICE, msg(f"big{n}", body=big_body(90_000, n)))  # blob files
        inst.cli("backup", "run", "--quiet")
        before = self.dump(inst)
        c = self.imap(inst)
        c.select("INBOX")
        c.must("UID STORE 1:* +FLAGS (\\Deleted)")
        c.must("EXPUNGE")
        c.logout()
        self.wait_archived(inst)
        items = {it["guid"]: it["blob"] for a in before["accounts"] for f in a["folders"]
                 for it in f["items"] if a["address"] == ALICE}
        self.assertEqual(len(items), 3)
        # The expunged bodies stay in the database until collected, and the restore refers
        # to them; one file is gone (as if collected): that body comes from the repository.
        big = sorted(b for b in items.values()
                     if os.path.exists(os.path.join(inst.db_dir(), "blobs", b[:2], b)))
        self.assertEqual(len(big), 2)
        gone = os.path.join(inst.db_dir(), "blobs", big[0][:2], big[0])
        os.remove(gone)
        r = inst.cli("restore", "--user", ALICE, "--seq", str(before["seq"]))
        self.assertIn("total restored: 3 items", r.out, r.out)
        self.assertTrue(os.path.exists(gone))
        now = {it["guid"]: it["blob"] for a in self.dump(inst)["accounts"] for f in a["folders"]
               for it in f["items"] if a["address"] == ALICE}
        self.assertEqual(now, items)
        inst.stop()
        self.assertIn("db1: ok", inst.cli("check", "--db", "db1").out)

    # ---------------------------------------------------------------- crashes

    def populate_large(self, inst, count=40, size=700_000):
        for i in range(count):
            deliver(inst.port, ALICE, msg(f"big{i}", body=big_body(size, i)))

    def test_kill9_during_backup_and_copy_then_resume(self):
        inst = self.instance("crash")
        self.populate_large(inst)
        inst.stop()
        repo = os.path.join(inst.data, "backup")
        env = dict(os.environ, MAILARK_CRASH_AFTER_PUTS="2")
        p = subprocess.run([h.binary(), "--config", inst.config, "backup", "run", "--quiet"],
                           env=env, capture_output=True)
        self.assertEqual(p.returncode, -9, p)
        packs_after_crash = self.pack_files(repo)
        self.assertTrue(packs_after_crash)
        self.assertFalse(glob.glob(os.path.join(repo, "snapshots", "*")))
        inst.cli("backup", "verify")
        r = inst.cli("backup", "run")
        uploaded = re.search(r"([\d.]+ \w+) uploaded", r.out).group(1)
        self.assertIn("base backup", r.out)
        self.assertIn("verified", inst.cli("backup", "list").out)
        # What the killed run wrote was indexed and reused, not sent again.
        self.assertTrue(set(packs_after_crash) <= set(self.pack_files(repo)))
        self.assertNotIn(" 0 B uploaded", r.out)
        total = sum(os.path.getsize(p) for p in self.pack_files(repo))
        self.assertLess(parse_size(uploaded), total, r.out)
        inst.cli("backup", "verify", "--read-data")
        # A copy killed after its second file: the target verifies, the next copy completes.
        self.add_mirror(inst)
        p = subprocess.run([h.binary(), "--config", inst.config, "backup", "copy", "--from",
                            "local", "--to", "mirror", "--quiet"], env=env, capture_output=True)
        self.assertEqual(p.returncode, -9, p)
        inst.cli("backup", "verify", "--repo", "mirror")
        r = inst.cli("backup", "copy", "--from", "local", "--to", "mirror")
        self.assertRegex(r.out, r"[1-9]\d* already there")
        inst.cli("backup", "verify", "--repo", "mirror", "--read-data")
        self.assertRestoresAs(inst, self.dump(inst), "fromcrash", "restore after crashes")

    # ---------------------------------------------------------------- damage

    def test_damage_is_named_survived_through_another_tier_and_repaired(self):
        inst = self.instance("damage")
        self.add_mirror(inst)
        self.populate_large(inst, count=30, size=300_000)
        for i in range(20):
            deliver(inst.port, BOB, msg(f"small{i}"))
        inst.stop()
        inst.cli("backup", "run", "--quiet")
        inst.cli("backup", "copy", "--from", "local", "--to", "mirror", "--quiet")
        want = self.dump(inst)
        local = os.path.join(inst.data, "backup")
        packs = self.pack_files(local)
        self.assertGreaterEqual(len(packs), 2)
        # A flipped byte: verify names the pack; a restore reads the mirror's copy.
        self.flip_byte(packs[0], 100)
        r = inst.cli("backup", "verify", "--repo", "local", "--read-data", expect=1)
        self.assertIn(os.path.basename(packs[0]), r.out)
        self.assertIn("DAMAGED", r.out)
        self.assertRestoresAs(inst, want, "viamirror", "restore through the mirror")
        # A missing pack and a truncated index are named by the structure check. One at a
        # time: a truncated index that happens to list the missing pack no longer says the
        # pack should be there (its objects are then named missing instead).
        os.rename(packs[1], packs[1] + ".away")
        r = inst.cli("backup", "verify", "--repo", "local", expect=1)
        self.assertIn(f"pack {os.path.basename(packs[1])}: missing", r.out)
        index = sorted(glob.glob(os.path.join(local, "index", "*")))[0]
        with open(index, "r+b") as f:
            f.truncate(os.path.getsize(index) // 2)
        r = inst.cli("backup", "verify", "--repo", "local", expect=1)
        self.assertIn(f"index {os.path.basename(index)[:12]}", r.out)
        self.assertEqual(inst.cli("health", expect=None).rc, 2)
        # Repair from the mirror puts everything back.
        os.unlink(packs[1] + ".away")
        inst.cli("backup", "repair", "--from", "mirror", "local")
        inst.cli("backup", "verify", "--repo", "local", "--read-data")
        # The same pack damaged in both tiers: the restore fails, names it, creates nothing.
        mirror_pack = os.path.join(inst.data, "mirror", os.path.relpath(packs[0], local))
        self.flip_byte(packs[0], 100)
        self.flip_byte(mirror_pack, 100)
        r = inst.cli("restore", "--db", "db1", "--into", "broken", expect=None)
        self.assertNotEqual(r.rc, 0)
        self.assertIn("no good copy in any repository", r.err)
        self.assertFalse(os.path.exists(inst.db_dir("broken")))
        self.assertFalse(glob.glob(os.path.join(inst.data, "db", ".restoring-*")))
        # A wrong key is named as such.
        shutil.copy(os.path.join(inst.data, "backup.key"), os.path.join(inst.root, "key.saved"))
        other = h.Instance("otherkey")
        shutil.copy(os.path.join(other.data, "backup.key"), os.path.join(inst.data, "backup.key"))
        r = inst.cli("backup", "verify", "--repo", "local", expect=1)
        self.assertIn("wrong key", r.out)
        r = inst.cli("restore", "--db", "db1", "--into", "wrongkey", expect=None)
        self.assertNotEqual(r.rc, 0)
        self.assertIn("wrong key", r.err)

    # ---------------------------------------------------------------- corrupt database

    def test_corrupt_database_fails_the_backup_and_health_goes_critical(self):
        inst = self.instance("corruptdb")
        deliver(inst.port, ALICE, msg("big", body=big_body(120_000, 3)))
        deliver(inst.port, ALICE, msg("small"))
        inst.cli("backup", "run", "--quiet")
        self.wait_archived(inst)
        r = inst.cli("health")
        self.assertTrue(r.out.startswith("OK"), r.out)
        blob = [it["blob"] for a in self.dump(inst)["accounts"] for f in a["folders"]
                for it in f["items"] if it["size"] > 100_000][0]
        path = os.path.join(inst.db_dir(), "blobs", blob[:2], blob)
        self.flip_byte(path, os.path.getsize(path) // 2)
        r = inst.cli("backup", "run", expect=1)
        self.assertIn("FAILED", r.err)
        self.assertIn(blob, r.err)
        r = inst.cli("health", expect=2)
        self.assertIn("CRITICAL", r.out)
        self.assertIn("last base backup failed", r.out)
        self.assertIn(blob, r.out)
        j = json.loads(inst.cli("health", "--json", expect=2).out)
        self.assertEqual(j["databases"]["db1"]["status"], "critical")
        self.assertIn(blob, j["databases"]["db1"]["last_failure"]["reason"])
        # Only the backup taken before the damage is listed.
        self.assertEqual(inst.cli("backup", "list").out.count(" verified"), 1)

    def test_broken_journal_link_fails_the_backup(self):
        inst = self.instance("corruptjournal", start=False)
        inst.start()
        for i in range(3):
            deliver(inst.port, ALICE, msg(f"m{i}"))
        inst.stop()
        con = sqlite3.connect(inst.meta_path())
        # A record whose fields no longer match its hash: the chain breaks there.
        con.execute("UPDATE journal SET time_ms = time_ms + 1 WHERE seq = 3")
        con.commit()
        con.close()
        r = inst.cli("backup", "run", expect=1)
        self.assertIn("journal of database db1 is broken at seq 3", r.err)
        self.assertEqual(inst.cli("health", expect=None).rc, 2)

    # ---------------------------------------------------------------- S3

    def test_s3_tier_end_to_end(self):
        with s3_server() as s3:
            extra = (f'[[repository]]\nname = "offsite"\ntype = "s3"\nendpoint = "{s3.endpoint}"\n'
                     f'bucket = "{s3.bucket}"\nprefix = "mailark/"\nregion = "{s3.region}"\n'
                     f'access_key = "{s3.access_key}"\nsecret_key = "{s3.secret_key}"\n')
            inst = self.instance("s3", extra=extra)
            for i in range(8):
                deliver(inst.port, ALICE, msg(f"s3-{i}", body=big_body(20_000 + 9000 * i, i)))
            deliver(inst.port, BOB, msg("bob"))
            inst.cli("backup", "run", "--quiet")
            inst.cli("backup", "copy", "--from", "local", "--to", "offsite", "--quiet")
            # The server archives the journal to both tiers.
            c = self.imap(inst)
            c.select("INBOX")
            c.must("UID STORE 1:3 +FLAGS (\\Flagged)")
            c.logout()
            def offsite_current():
                d = json.loads(inst.cli("health", "--json", expect=None).out)
                rp = d["repositories"]["offsite"].get("restore_points", {}).get("db1", {})
                return rp.get("journal_seq") == d["databases"]["db1"]["journal_seq"]
            self.assertTrue(wait_for(offsite_current, timeout=20), inst.log_tail())
            inst.stop()
            want = self.dump(inst)
            inst.cli("backup", "verify", "--repo", "offsite", "--read-data")
            self.assertIn("offsite", inst.cli("backup", "list", "--repo", "offsite").out)
            # The local tier is lost: the restore comes from S3.
            shutil.rmtree(os.path.join(inst.data, "backup"))
            r = inst.cli("restore", "--db", "db1", "--into", "froms3")
            self.assertIn("restored database db1", r.out)
            self.assertSameState(want, self.dump(inst, "froms3"), "restore from S3")
            # Backups of backups the other way: the local tier refilled from S3.
            inst.cli("backup", "copy", "--from", "offsite", "--to", "local", "--quiet")
            inst.cli("backup", "verify", "--repo", "local", "--read-data")


if __name__ == "__main__":
    h.main()
