"""8 parallel LMTP connections deliver 5000 items to 10 accounts on two databases; then exact
counts and exact bytes (sha256 multisets) per account, de-duplication per database, a clean
`mailark check` and matching `mailark stats`."""

import collections
import queue
import random
import threading
import time

import harness as h
from harness import LMTP, sha256_hex, make_message

DOMAIN = "par.test"
CONNECTIONS = 8
USERS = [f"u{i}@{DOMAIN}" for i in range(10)]
DB_OF = {u: ("db1" if i < 5 else "db2") for i, u in enumerate(USERS)}


def pick_size(rnd):
    x = rnd.random()
    if x < 0.70:
        return rnd.randint(300, 4000)
    if x < 0.95:
        return rnd.randint(4000, 50_000)
    return rnd.randint(50_000, 200_000)


def build_jobs(seed=42):
    """Transactions as (message id, size, recipients); 5000 items in all.

    3400 messages to one recipient, 200 messages sent twice in separate transactions to
    two different recipients, 600 messages with two recipients in one transaction."""
    rnd = random.Random(seed)
    jobs = []
    for i in range(3400):
        jobs.append((f"single-{i}@par.test", pick_size(rnd), [rnd.choice(USERS)]))
    for i in range(200):
        a, b = rnd.sample(USERS, 2)
        size = pick_size(rnd)
        jobs.append((f"twice-{i}@par.test", size, [a]))
        jobs.append((f"twice-{i}@par.test", size, [b]))
    for i in range(600):
        jobs.append((f"pair-{i}@par.test", pick_size(rnd), rnd.sample(USERS, 2)))
    rnd.shuffle(jobs)
    assert sum(len(r) for _, _, r in jobs) == 5000
    return jobs


def parse_stats(out):
    rows = {}
    lines = out.strip().splitlines()
    header = lines[0].split()
    assert header == ["DATABASE", "ACCOUNTS", "ITEMS", "BYTES", "STORED", "JOURNAL"], out
    for line in lines[1:]:
        f = line.split()
        rows[f[0]] = dict(zip(header[1:], (int(x) for x in f[1:])))
    return rows


class ParallelDeliveryTest(h.MailarkTestCase):

    def test_parallel_delivery_5000(self):
        inst = h.Instance("parallel")
        inst.cli("db", "add", "db2")
        inst.add_tenant(DOMAIN)
        for u in USERS:
            inst.add_user(u, db=DB_OF[u])
        for u in USERS:
            self.assertEqual(inst.user_database(u), DB_OF[u])
        port = inst.start()

        jobs = build_jobs()
        q = queue.Queue()
        for j in jobs:
            q.put(j)
        expected = collections.defaultdict(list)  # address -> [sha]
        sizes = collections.defaultdict(int)       # db -> bytes of items
        problems = []
        lock = threading.Lock()

        def worker(n):
            c = None
            try:
                c = LMTP(port, timeout=120)
                while True:
                    try:
                        msgid, size, rcpts = q.get_nowait()
                    except queue.Empty:
                        break
                    msg = make_message(msgid, size)
                    digest = sha256_hex(msg)
                    mr, rr, dr = c.transaction("sender@remote.test", rcpts, msg)
                    with lock:
                        for r in rcpts:
                            rep = dr.get(r) or rr.get(r) or mr
                            if rep.code != 250:
                                problems.append(f"{msgid} -> {r}: {rep}")
                                continue
                            expected[r].append(digest)
                            sizes[DB_OF[r]] += len(msg)
                c.cmd("QUIT")
            except Exception as e:  # reported below, fails the test
                with lock:
                    problems.append(f"worker {n}: {type(e).__name__}: {e}")
            finally:
                if c:
                    c.close()

        t0 = time.time()
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(CONNECTIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        elapsed = time.time() - t0
        self.assertFalse(any(t.is_alive() for t in threads), "workers hung")
        self.assertEqual(problems, [], "\n".join(problems[:20]))
        total = sum(len(v) for v in expected.values())
        self.assertEqual(total, 5000)
        print(f"\ndelivered {len(jobs)} transactions / {total} items over {CONNECTIONS} "
              f"connections in {elapsed:.1f}s ({total / elapsed:.0f} items/s)")

        # exact counts and exact bytes per account, while the server still runs
        stored = inst.blobs_by_account()
        for u in USERS:
            self.assertEqual(len(stored.get(u, [])), len(expected[u]), f"count for {u}")
            self.assertEqual(stored.get(u, []), sorted(expected[u]), f"content of {u}")
        self.assertEqual(set(stored), set(USERS))

        # each account lives on its database only
        for it in inst.items():
            self.assertEqual(it["db"], DB_OF[it["address"]], it)
            self.assertEqual(it["folder"], "INBOX")

        # GUIDs are unique; UIDs are unique and dense per folder
        items = inst.items()
        self.assertEqual(len({it["guid"] for it in items}), 5000)
        by_folder = collections.defaultdict(list)
        for it in items:
            by_folder[it["address"]].append(it["uid"])
        for u, uids in by_folder.items():
            self.assertEqual(sorted(uids), list(range(1, len(uids) + 1)), f"UIDs of {u}")

        for addr, (recorded, actual) in inst.account_usage().items():
            self.assertEqual(recorded, actual, f"used bytes/items of {addr}")
        self.assertEqual(len(set(inst.ingress_ids())), len(jobs), "ingress records")

        # content is stored once per database
        for db in ("db1", "db2"):
            want = {d for u in USERS if DB_OF[u] == db for d in expected[u]}
            self.assertEqual(set(inst.stored_blobs(db)), want, f"stored bodies of {db}")
            with h.ro_connect(inst.meta_path(db)) as c:
                n = c.execute("SELECT count(*) FROM messages").fetchone()[0]
            self.assertEqual(n, len(want), f"messages rows of {db}")

        self.assertEqual(inst.stop(), 0, inst.log_tail())

        r = inst.cli("check", expect=None)
        self.assertEqual(r.rc, 0, str(r))
        self.assertRegex(r.out, r"(?m)^db1: ok \(5 accounts, \d+ items")
        self.assertRegex(r.out, r"(?m)^db2: ok \(5 accounts, \d+ items")
        self.assertNotIn("PROBLEM", r.out)

        stats = parse_stats(inst.cli("stats").out)
        self.assertEqual(sum(s["ITEMS"] for s in stats.values()), 5000, stats)
        for db in ("db1", "db2"):
            self.assertEqual(stats[db]["ACCOUNTS"], 5)
            self.assertEqual(stats[db]["ITEMS"],
                             sum(len(expected[u]) for u in USERS if DB_OF[u] == db))
            self.assertEqual(stats[db]["BYTES"], sizes[db], f"BYTES of {db}")

        # the stored state survives a restart unchanged
        inst.start()
        self.assertEqual(inst.blobs_by_account(), stored)
        self.assertEqual(inst.stop(), 0)

    def test_concurrent_deliveries_respect_quota(self):
        """8 connections race into one mailbox with room for exactly 10 messages."""
        inst = h.Instance("quota-race")
        inst.add_tenant(DOMAIN)
        user = f"tight@{DOMAIN}"
        inst.add_user(user, quota="100KB")
        port = inst.start()
        msgs = [make_message(f"race-{i}@par.test", 10 * 1024) for i in range(40)]
        self.assertTrue(all(len(m) == 10 * 1024 for m in msgs))
        results, lock = [], threading.Lock()
        barrier = threading.Barrier(CONNECTIONS)

        def worker(n):
            c = LMTP(port)
            try:
                barrier.wait()
                for m in msgs[n::CONNECTIONS]:
                    _, rr, dr = c.transaction("s@remote.test", [user], m)
                    rep = dr.get(user) or rr[user]
                    with lock:
                        results.append((sha256_hex(m), rep.code, rep.enhanced))
            finally:
                c.close()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(CONNECTIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        accepted = sorted(d for d, code, _ in results if code == 250)
        refused = [(code, enh) for _, code, enh in results if code != 250]
        self.assertEqual(len(results), 40)
        self.assertEqual(set(refused), {(552, "5.2.2")}, refused)
        self.assertEqual(len(accepted), 10, "mailbox of 100 KiB holds exactly ten 10 KiB messages")
        self.assertEqual(inst.blobs_by_account().get(user), accepted)
        (used, n), actual = inst.account_usage()[user]
        self.assertLessEqual(used, 100 * 1024)
        self.assertEqual((used, n), actual)
        self.assertEqual(inst.stop(), 0)


if __name__ == "__main__":
    h.main()
