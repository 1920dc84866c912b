"""`mailark check` finds injected damage and names it: a flipped byte in a blob (raw and
zstd), a missing blob, a broken journal link, a damaged SQLite page; an undamaged copy
passes, and damage in one database does not fail the check of another."""

import os
import re
import shutil
import sqlite3

import harness as h
from harness import LMTP, sha256_hex, make_message

DOMAIN = "check.test"


def problems(out):
    return [l for l in out.splitlines() if " PROBLEM " in l]


class CheckTest(h.MailarkTestCase):

    @classmethod
    def setUpClass(cls):
        inst = cls.inst = h.Instance("check")
        cls.shared_instances = [inst]
        inst.cli("db", "add", "db2")
        inst.add_tenant(DOMAIN)
        inst.add_user(f"a@{DOMAIN}", db="db1")
        inst.add_user(f"b@{DOMAIN}", db="db1")
        inst.add_user(f"z@{DOMAIN}", db="db2")
        port = inst.start()
        c = LMTP(port)
        cls.small = b"Subject: small\r\nMessage-ID: <small@check.test>\r\n\r\nsmall body\r\n"
        cls.big = (b"Subject: big\r\nMessage-ID: <big@check.test>\r\n\r\n"
                   + b"The quick brown fox jumps over the lazy dog, again and again.\r\n" * 3000)
        for m in (cls.small, cls.big):
            _, _, dr = c.transaction("s@remote.test", [f"a@{DOMAIN}"], m)
            assert dr[f"a@{DOMAIN}"].code == 250, dr
        # db2 gets a body large enough for a blob file of its own
        cls.big2 = cls.big.replace(b"big@check.test", b"big2@check.test")
        _, _, dr = c.transaction("s@remote.test", [f"z@{DOMAIN}"], cls.big2)
        assert dr[f"z@{DOMAIN}"].code == 250, dr
        for i in range(300):  # enough rows for tables and indexes to span several pages
            m = make_message(f"fill-{i}@check.test", 600 + 37 * i)
            rcpts = [f"a@{DOMAIN}", f"b@{DOMAIN}", f"z@{DOMAIN}"][i % 3:i % 3 + 2]
            _, _, dr = c.transaction("s@remote.test", rcpts, m)
            assert all(x.code == 250 for x in dr.values()), dr
        c.close()
        rc = inst.stop()
        assert rc == 0, f"stop exit {rc}"
        cls.small_sha, cls.big_sha = sha256_hex(cls.small), sha256_hex(cls.big)
        with h.ro_connect(inst.meta_path()) as db:
            cls.journal_len = db.execute("SELECT max(seq) FROM journal").fetchone()[0]

    def copy(self):
        """A fresh copy of the stopped data directory."""
        root = h.new_tmpdir("mailark-it-checkcopy-")
        shutil.copytree(self.inst.data, os.path.join(root, "data"))
        return h.Instance(root=root, init=False)

    def check(self, inst, *args):
        return inst.cli("check", *args, expect=None)

    def assertDamageFound(self, r, db, pattern):
        self.assertEqual(r.rc, 1, str(r))
        found = [l for l in problems(r.out) if l.startswith(f"{db}: PROBLEM ")]
        self.assertTrue(any(re.search(pattern, l) for l in found),
                        f"no problem line matching {pattern!r}\n{r}")
        self.assertTrue(r.err.startswith("mailark: "), str(r))
        self.assertEqual(len(r.err.splitlines()), 1, str(r))

    # ---- baseline

    def test_wal_checkpointed_on_clean_stop(self):
        wal = self.inst.meta_path() + "-wal"
        self.assertTrue(not os.path.exists(wal) or os.path.getsize(wal) == 0,
                        "meta.sqlite-wal still holds data after a clean stop")

    def test_undamaged_copy_passes(self):
        inst = self.copy()
        r = self.check(inst)
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(problems(r.out), [])
        self.assertRegex(r.out, r"(?m)^db1: ok \(2 accounts, \d+ items, \d+ blobs, \d+ journal")
        self.assertRegex(r.out, r"(?m)^db2: ok \(1 accounts, ")
        self.assertEqual(r.err, "")

    # ---- blobs

    def flip(self, path, offset):
        with open(path, "r+b") as f:
            f.seek(offset)
            b = f.read(1)
            f.seek(offset)
            f.write(bytes([b[0] ^ 0x01]))

    def test_flipped_byte_in_inline_blob(self):
        """Small bodies live in messages.data (same MKB1 encoding as a file)."""
        inst = self.copy()
        self.assertFalse(os.path.exists(inst.blob_file(self.small_sha)))
        with sqlite3.connect(inst.meta_path()) as db:
            data = db.execute("SELECT data FROM messages WHERE hex(blob) = ?",
                              (self.small_sha.upper(),)).fetchone()[0]
            self.assertEqual(data[:4], b"MKB1")
            pos = 16 + len(self.small) // 2
            damaged = data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1:]
            db.execute("UPDATE messages SET data = ? WHERE hex(blob) = ?",
                       (damaged, self.small_sha.upper()))
        r = self.check(inst)
        self.assertDamageFound(r, "db1", rf"PROBLEM blob {self.small_sha}\b")
        named = set(re.findall(r"blob ([0-9a-f]{64})", r.out))
        self.assertEqual(named, {self.small_sha}, str(r))

    def test_flipped_byte_in_compressed_blob(self):
        inst = self.copy()
        path = inst.blob_file(self.big_sha)
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(16)
        self.assertNotEqual(head[4], 0, "big repetitive blob expected to be compressed")
        self.assertLess(size, len(self.big))
        self.flip(path, 16 + (size - 16) // 2)
        r = self.check(inst)
        self.assertDamageFound(r, "db1", rf"PROBLEM blob {self.big_sha}\b")
        named = set(re.findall(r"blob ([0-9a-f]{64})", r.out))
        self.assertEqual(named, {self.big_sha}, str(r))

    def test_missing_blob(self):
        inst = self.copy()
        os.unlink(inst.blob_file(self.big_sha))
        r = self.check(inst)
        self.assertDamageFound(r, "db1", rf"PROBLEM blob {self.big_sha}\b")

    def test_truncated_blob(self):
        inst = self.copy()
        path = inst.blob_file(self.big_sha)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 5)
        r = self.check(inst)
        self.assertDamageFound(r, "db1", rf"PROBLEM blob {self.big_sha}\b")

    def test_wrong_and_missing_reference_counts(self):
        """Counts live in message_refs (format version 2); each wrong one is named."""
        inst = self.copy()
        with sqlite3.connect(inst.meta_path()) as db:
            n = db.execute("SELECT refs FROM message_refs WHERE hex(blob) = ?",
                           (self.small_sha.upper(),)).fetchone()[0]
            db.execute("UPDATE message_refs SET refs = refs + 1 WHERE hex(blob) = ?",
                       (self.small_sha.upper(),))
            db.execute("DELETE FROM message_refs WHERE hex(blob) = ?", (self.big_sha.upper(),))
            db.execute("INSERT INTO message_refs VALUES (?, 1)", (bytes(32),))
        r = self.check(inst)
        self.assertDamageFound(
            r, "db1", rf"PROBLEM blob {self.small_sha}: reference count {n + 1} but {n} items")
        self.assertRegex(r.out, rf"PROBLEM blob {self.big_sha}: no reference count")
        self.assertRegex(r.out, "PROBLEM message_refs table: .* does not exist: blob 0{64}")
        self.assertEqual(len(problems(r.out)), 3, str(r))

    # ---- journal

    def tamper(self, inst, sql, params=()):
        c = sqlite3.connect(inst.meta_path())
        try:
            cur = c.execute(sql, params)
            self.assertEqual(cur.rowcount, 1)
            c.commit()
        finally:
            c.close()

    def middle_seq(self):
        return self.journal_len // 2

    def test_journal_payload_changed(self):
        inst = self.copy()
        seq = self.middle_seq()
        with h.ro_connect(inst.meta_path()) as c:
            payload = bytes(c.execute("SELECT payload FROM journal WHERE seq = ?", (seq,)).fetchone()[0])
        changed = payload.replace(b'"', b"'", 1) if b'"' in payload else payload + b" "
        self.tamper(inst, "UPDATE journal SET payload = ? WHERE seq = ?", (changed, seq))
        r = self.check(inst)
        self.assertDamageFound(r, "db1", rf"PROBLEM journal seq {seq}\b")

    def test_journal_prev_hash_changed(self):
        inst = self.copy()
        seq = self.middle_seq()
        self.tamper(inst, "UPDATE journal SET prev_hash = zeroblob(32) WHERE seq = ?", (seq,))
        r = self.check(inst)
        self.assertDamageFound(r, "db1", rf"PROBLEM journal seq {seq}\b")

    def test_journal_record_removed(self):
        inst = self.copy()
        seq = self.middle_seq()
        self.tamper(inst, "DELETE FROM journal WHERE seq = ?", (seq,))
        r = self.check(inst)
        self.assertDamageFound(r, "db1", rf"PROBLEM journal seq ({seq}|{seq + 1})\b")

    def test_journal_tail_removed(self):
        """The newest records vanish: only visible against the items that refer to them."""
        inst = self.copy()
        self.tamper(inst, "DELETE FROM journal WHERE seq = ?", (self.journal_len,))
        r = self.check(inst)
        self.assertEqual(r.rc, 1, f"the last journal record was deleted, check passed\n{r}")

    # ---- SQLite

    def damage_page(self, inst, name):
        path = inst.meta_path()
        self.assertFalse(os.path.exists(path + "-wal") and os.path.getsize(path + "-wal") > 0)
        with h.ro_connect(path) as c:
            page_size = c.execute("PRAGMA page_size").fetchone()[0]
            root = c.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
        self.assertGreater(root, 1)
        with open(path, "r+b") as f:
            f.seek((root - 1) * page_size)  # the b-tree page header and cell pointers
            f.write(b"\xa5" * 100)
        return root

    def test_damaged_table_page(self):
        inst = self.copy()
        self.damage_page(inst, "items")
        r = self.check(inst)
        self.assertDamageFound(r, "db1", r"(?i)PROBLEM sqlite")

    def test_damaged_index_page(self):
        inst = self.copy()
        self.damage_page(inst, "items_by_guid")
        r = self.check(inst)
        self.assertDamageFound(r, "db1", r"(?i)PROBLEM sqlite")

    def test_damaged_journal_table_page(self):
        inst = self.copy()
        self.damage_page(inst, "journal")
        r = self.check(inst)
        self.assertDamageFound(r, "db1", r"(?i)PROBLEM sqlite")

    # ---- containment

    def test_damage_is_reported_for_its_database_only(self):
        inst = self.copy()
        victim = next(f for f in inst.blob_files("db2"))
        self.flip(inst.blob_file(victim, db="db2"), 16 + 10)
        r = self.check(inst, "--db", "db1")
        self.assertEqual(r.rc, 0, str(r))
        self.assertNotIn("db2", r.out)
        r = self.check(inst)
        self.assertDamageFound(r, "db2", rf"PROBLEM blob {victim}\b")
        self.assertRegex(r.out, r"(?m)^db1: ok ")
        self.assertEqual([l for l in problems(r.out) if l.startswith("db1")], [])

    def test_quiet_prints_problems(self):
        inst = self.copy()
        self.flip(inst.blob_file(self.big_sha), 16 + 3)
        r = self.check(inst, "--quiet")
        self.assertDamageFound(r, "db1", rf"PROBLEM blob {self.big_sha}\b")


if __name__ == "__main__":
    h.main()
