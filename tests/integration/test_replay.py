"""Replay from the ingress cache after losing a database: delete db1's files, recreate the
database, `mailark replay` brings every message back (same bytes, same item GUIDs), a second
replay delivers nothing, `--user` and `--list` select what they say."""

import os
import re
import shutil
import time

import harness as h
from harness import LMTP, sha256_hex, make_message

DOMAIN = "replay.test"
DB1_USERS = [f"r{i}@{DOMAIN}" for i in range(1, 4)]
DB2_USER = f"r4@{DOMAIN}"


def parse_replay(out):
    m = re.search(r"replayed (\d+) records: (\d+) delivered, (\d+) already present, (\d+) failed",
                  out)
    assert m, f"no summary line in replay output:\n{out}"
    return tuple(int(x) for x in m.groups())


def listed(out):
    """Ingress ids of the records `replay --list` shows."""
    return re.findall(r"(?m)^\S+\s+([0-9a-f]{32})\s", out)


def state(inst, addresses):
    """address -> sorted [(blob, guid, ingress)] of that account's items."""
    res = {a: [] for a in addresses}
    for it in inst.items():
        if it["address"] in res:
            res[it["address"]].append((it["blob"], it["guid"], it["ingress"]))
    return {a: sorted(v) for a, v in res.items()}


class ReplayTest(h.MailarkTestCase):

    def populate(self):
        inst = h.Instance("replay")
        inst.cli("db", "add", "db2")
        inst.add_tenant(DOMAIN)
        for u in DB1_USERS:
            inst.add_user(u, db="db1")
        inst.add_user(DB2_USER, db="db2")
        port = inst.start()
        c = LMTP(port)
        transactions = []
        plan = ([[DB1_USERS[0]]] * 12 + [[DB1_USERS[1]]] * 8 + [[DB1_USERS[0], DB1_USERS[1]]] * 6
                + [[DB1_USERS[2], DB2_USER]] * 5 + [[DB2_USER]] * 4
                + [[DB1_USERS[2].replace("@", "+tag@")]] * 3)
        for i, rcpts in enumerate(plan):
            m = make_message(f"replay-{i}@{DOMAIN}", 400 + 311 * i)
            _, _, dr = c.transaction("s@remote.test", rcpts, m)
            self.assertTrue(all(x.code == 250 for x in dr.values()), dr)
            transactions.append((rcpts, sha256_hex(m)))
        # one message refused for everyone never reaches the cache
        _, rr, _ = c.transaction("s@remote.test", [f"ghost@{DOMAIN}"], b"Subject: x\r\n\r\nx\r\n")
        c.close()
        self.assertEqual(inst.stop(), 0)
        return inst, transactions

    def lose_db1(self, inst):
        shutil.rmtree(inst.db_dir("db1"))
        self.assertFalse(os.path.exists(inst.db_dir("db1")))
        r = inst.cli("check", "--db", "db1", expect=None)
        self.assertEqual(r.rc, 1, str(r))

    def recreate_db1(self, inst):
        """The operator's way back to an empty database after its files are lost
        (docs/recovery-runbook.md)."""
        return inst.cli("db", "recreate", "db1")

    def test_recreate_lost_database(self):
        inst, _ = self.populate()
        self.lose_db1(inst)
        self.recreate_db1(inst)
        r = inst.cli("check", "--db", "db1", expect=None)
        self.assertEqual(r.rc, 0, str(r))
        # every user routed to db1 has an empty mailbox again
        for u in DB1_USERS:
            self.assertEqual(inst.count_items(u), 0)
        # recreating over existing files is refused with one line
        r = inst.cli("db", "recreate", "db1", expect=None)
        self.assertNotEqual(r.rc, 0)
        self.assertIn("still has files", r.err)
        self.assertEqual(len(r.err.strip().splitlines()), 1)

    def test_replay_after_database_loss(self):
        inst, transactions = self.populate()
        all_users = DB1_USERS + [DB2_USER]
        before = state(inst, all_users)
        db1_items = sum(len(before[u]) for u in DB1_USERS)
        db2_items = len(before[DB2_USER])
        self.assertEqual(db1_items + db2_items, sum(len(r) for r, _ in transactions))
        self.assertEqual(len(listed(inst.cli("replay", "--list").out)), len(transactions))

        # while nothing is lost a replay (with the server running) changes nothing
        inst.start()
        r = inst.cli("replay", "--since", "-1h")
        self.assertEqual(parse_replay(r.out),
                         (len(transactions), 0, db1_items + db2_items, 0), str(r))
        self.assertEqual(state(inst, all_users), before)
        self.assertEqual(inst.stop(), 0)

        self.lose_db1(inst)
        self.recreate_db1(inst)
        self.assertEqual(inst.cli("check", "--db", "db1").rc, 0)

        # --list and its filters
        out = inst.cli("replay", "--list").out
        self.assertEqual(len(listed(out)), len(transactions), out)
        out = inst.cli("replay", "--list", "--user", DB2_USER).out
        self.assertEqual(len(listed(out)), sum(1 for r, _ in transactions if DB2_USER in r), out)
        out = inst.cli("replay", "--list", "--since", "-2h", "--until", "-1h").out
        self.assertEqual(listed(out), [], out)
        out = inst.cli("replay", "--list", "--since", f"@{int(time.time()) - 3600}").out
        self.assertEqual(len(listed(out)), len(transactions), out)

        # --user first: only that account comes back
        u = DB1_USERS[0]
        r = inst.cli("replay", "--since", "-1h", "--user", u)
        records, delivered, present, failed = parse_replay(r.out)
        self.assertEqual((delivered, failed), (len(before[u]), 0), str(r))
        now = state(inst, all_users)
        self.assertEqual(now[u], before[u], "replayed items differ (bytes, GUID or ingress id)")
        for other in DB1_USERS[1:]:
            self.assertEqual(now[other], [], f"--user {u} also delivered to {other}")

        # then everything: the rest comes back, nothing twice
        r = inst.cli("replay", "--since", "-1h")
        self.assertEqual(parse_replay(r.out),
                         (len(transactions), db1_items - len(before[u]),
                          len(before[u]) + db2_items, 0), str(r))
        after = state(inst, all_users)
        for a in all_users:
            self.assertEqual([x[0] for x in after[a]], [x[0] for x in before[a]],
                             f"bytes of {a}'s items")
            self.assertEqual(after[a], before[a], f"GUIDs / ingress ids of {a}'s items")

        # replay again: no duplicates
        r = inst.cli("replay", "--since", "-1h")
        self.assertEqual(parse_replay(r.out), (len(transactions), 0, db1_items + db2_items, 0),
                         str(r))
        self.assertEqual(state(inst, all_users), before)

        r = inst.cli("check", expect=None)
        self.assertEqual(r.rc, 0, str(r))

        # the server comes up on the recovered database and takes new mail
        port = inst.start()
        c = LMTP(port)
        m = make_message("after-recovery@replay.test", 900)
        _, _, dr = c.transaction("s@remote.test", [DB1_USERS[1]], m)
        c.close()
        self.assertEqual(dr[DB1_USERS[1]].code, 250)
        self.assertEqual(inst.count_items(DB1_USERS[1]), len(before[DB1_USERS[1]]) + 1)
        self.assertEqual(inst.stop(), 0)

    def test_replay_window(self):
        inst, transactions = self.populate()
        self.lose_db1(inst)
        self.recreate_db1(inst)
        r = inst.cli("replay", "--since", "-2h", "--until", "-1h")
        self.assertEqual(parse_replay(r.out), (0, 0, 0, 0), str(r))
        self.assertEqual(sum(1 for it in inst.items(db="db1")), 0)
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        r = inst.cli("replay", "--since", "-1h", "--until", iso)
        self.assertEqual(parse_replay(r.out)[3], 0, str(r))
        self.assertGreater(parse_replay(r.out)[1], 0, str(r))

    def test_replay_argument_errors(self):
        inst = h.Instance("replayargs")
        for args in (["replay"], ["replay", "--since", "yesterday"],
                     ["replay", "--since", "-1h", "--until", "-2h"],
                     ["replay", "--since", "-1h", "--user", f"nobody@{DOMAIN}"],
                     ["replay", "--since", "-1h", "--until", "soon"]):
            r = inst.cli(*args, expect=None)
            self.assertNotEqual(r.rc, 0, str(r))
            self.assertEqual(len(r.err.splitlines()), 1, str(r))
            self.assertTrue(r.err.startswith("mailark: "), str(r))


if __name__ == "__main__":
    h.main()
