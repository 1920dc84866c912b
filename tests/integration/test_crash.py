"""Crash safety: kill -9 the server at random moments during parallel LMTP delivery, restart,
and prove that every acknowledged message is stored exactly once, an unanswered one at most
once (and stays as it was found), a refused or incomplete one never, and that
`mailark check` passes after every crash."""

import collections
import re
import os
import random
import threading
import time

import harness as h
from harness import LMTP, sha256_hex, make_message

DOMAIN = "crash.test"
USERS = [f"c{i}@{DOMAIN}" for i in range(6)]
DB_OF = {u: ("db1" if i % 2 == 0 else "db2") for i, u in enumerate(USERS)}
CYCLES = int(os.environ.get("MAILARK_CRASH_CYCLES", "20"))
THREADS = 6

UNSENT = "unsent"      # the end-of-data marker never left the client: must be absent
UNKNOWN = "unknown"    # sent completely, no reply: at most once
ACK = "ack"            # 250: exactly once
REFUSED = "refused"    # 4xx/5xx: absent


class Record:
    __slots__ = ("msgid", "rcpt", "sha", "size", "outcome", "reply", "seen")

    def __init__(self, msgid, rcpt, sha, size):
        self.msgid, self.rcpt, self.sha, self.size = msgid, rcpt, sha, size
        self.outcome, self.reply, self.seen = UNSENT, None, None


def deliver_until_dead(port, cycle, n, rnd, records, lock):
    """Delivers unique messages over one connection until the server goes away."""
    try:
        c = LMTP(port, timeout=30)
    except (OSError, h.ConnectionLost):
        return
    seq = 0
    try:
        while True:
            seq += 1
            msgid = f"crash-{cycle}-{n}-{seq}@{DOMAIN}"
            size = rnd.randint(300, 3000) if rnd.random() < 0.9 else rnd.randint(3000, 120_000)
            rcpt = rnd.choice(USERS)
            msg = make_message(msgid, size, to=rcpt)
            rec = Record(msgid, rcpt, sha256_hex(msg), size)
            with lock:
                records.append(rec)
            mr = c.cmd("MAIL FROM:<sender@remote.test>")
            rr = c.cmd(f"RCPT TO:<{rcpt}>")
            if mr.code != 250 or rr.code != 250:
                rec.outcome, rec.reply = REFUSED, f"{mr} / {rr}"
                c.cmd("RSET")
                continue
            d = c.cmd("DATA")
            if d.code != 354:
                rec.outcome, rec.reply = REFUSED, str(d)
                continue
            c.send(h.frame_data(msg))
            rec.outcome = UNKNOWN
            rep = c.reply()
            rec.reply = str(rep)
            rec.outcome = ACK if rep.code == 250 else REFUSED
    except (OSError, h.ConnectionLost):
        pass  # the server was killed
    finally:
        c.close()


class CrashTest(h.MailarkTestCase):

    def verify(self, inst, records, cycle):
        counts = collections.Counter((it["address"], it["blob"]) for it in inst.items())
        errors = []
        for r in records:
            n = counts.get((r.rcpt, r.sha), 0)
            if r.outcome == ACK and n != 1:
                errors.append(f"acknowledged {r.msgid} -> {r.rcpt} stored {n} times")
            elif r.outcome == UNKNOWN:
                if n > 1:
                    errors.append(f"unanswered {r.msgid} -> {r.rcpt} stored {n} times")
                if r.seen is None:
                    r.seen = n
                elif r.seen != n:
                    errors.append(f"unanswered {r.msgid} -> {r.rcpt} was stored {r.seen} times "
                                  f"after its crash, now {n}")
            elif r.outcome in (UNSENT, REFUSED) and n != 0:
                errors.append(f"{r.outcome} {r.msgid} -> {r.rcpt} ({r.reply}) stored {n} times")
        for addr, (recorded, actual) in inst.account_usage().items():
            if recorded != actual:
                errors.append(f"{addr}: used bytes/items recorded {recorded}, items add up to {actual}")
        known = {(r.rcpt, r.sha) for r in records}
        for key, n in counts.items():
            if key not in known:
                errors.append(f"unexpected item {key} x{n}")
        self.assertEqual(errors, [], f"cycle {cycle}:\n" + "\n".join(errors[:30]))

    def check(self, inst, when, cycle):
        r = inst.cli("check", expect=None)
        self.assertEqual(r.rc, 0, f"check {when} crash in cycle {cycle} failed\n{r}")
        self.assertNotIn("PROBLEM", r.out)

    def test_kill9_during_parallel_delivery(self):
        inst = h.Instance("crash")
        inst.cli("db", "add", "db2")
        inst.add_tenant(DOMAIN)
        for u in USERS:
            inst.add_user(u, db=DB_OF[u])
        rnd = random.Random(int(os.environ.get("MAILARK_CRASH_SEED", "20261124")))
        records, lock = [], threading.Lock()
        in_flight_kills = 0
        port = inst.start()
        for cycle in range(1, CYCLES + 1):
            threads = [threading.Thread(target=deliver_until_dead,
                                        args=(port, cycle, n, random.Random(rnd.random()),
                                              records, lock))
                       for n in range(THREADS)]
            for t in threads:
                t.start()
            time.sleep(rnd.uniform(0.2, 1.5))
            inst.kill9()
            for t in threads:
                t.join(timeout=60)
            self.assertFalse(any(t.is_alive() for t in threads), "client threads hung")
            if any(r.outcome == UNKNOWN and r.seen is None for r in records):
                in_flight_kills += 1
            if cycle % 2 == 0:
                self.check(inst, "while stopped after", cycle)
            port = inst.start()
            self.verify(inst, records, cycle)
            if cycle % 2 == 1:
                self.check(inst, "while running after", cycle)

        self.assertEqual(inst.stop(), 0, inst.log_tail())
        self.verify(inst, records, "final")
        self.check(inst, "after the last", "final")

        # every stored item (so every acknowledged message) is in the ingress cache for replay
        cached = set(inst.ingress_ids())
        missing = [it for it in inst.items() if it["ingress"] not in cached]
        self.assertEqual(missing, [], "stored items whose ingress record is not in the cache")

        # replaying the whole cache over the surviving databases adds no duplicates
        r = inst.cli("replay", "--since", "-1d", expect=None)
        m = re.search(r"replayed (\d+) records: (\d+) delivered, (\d+) already present, "
                      r"(\d+) failed", r.out)
        self.assertTrue(m and r.rc == 0 and m.group(4) == "0", str(r))
        counts = collections.Counter((it["address"], it["blob"]) for it in inst.items())
        dups = [k for k, n in counts.items() if n > 1]
        self.assertEqual(dups, [], f"duplicates after replay\n{r}")
        lost = [x.msgid for x in records if x.outcome == ACK and counts[(x.rcpt, x.sha)] != 1]
        self.assertEqual(lost, [])
        print(f"replay after the crashes: {r.out.splitlines()[0]}")

        by = collections.Counter(r.outcome for r in records)
        unknown_stored = sum(1 for r in records if r.outcome == UNKNOWN and r.seen)
        print(f"\ncrash summary: cycles={CYCLES} acknowledged={by[ACK]} "
              f"unacknowledged={by[UNKNOWN]} (stored {unknown_stored}, absent "
              f"{by[UNKNOWN] - unknown_stored}) incomplete={by[UNSENT]} refused={by[REFUSED]} "
              f"kills-with-unanswered-messages={in_flight_kills}")
        self.assertEqual(by[REFUSED], 0, [r.reply for r in records if r.outcome == REFUSED][:5])
        self.assertGreater(by[ACK], CYCLES * 10, "too little traffic to mean anything")

    def test_mta_retry_then_replay_gives_one_copy(self):
        """An unanswered message is retried by the MTA (RFC 5321 4.5.4). If its database is
        later recovered with `mailark replay`, the message must still be there once: the
        cache must not bring back a delivery that was never acknowledged as a second copy."""
        inst = h.Instance("retry")
        inst.add_tenant(DOMAIN)
        for u in USERS:
            inst.add_user(u)
        rnd = random.Random(99)
        records, lock = [], threading.Lock()
        port = inst.start()
        for cycle in range(1, 16):
            threads = [threading.Thread(target=deliver_until_dead,
                                        args=(port, cycle, n, random.Random(rnd.random()),
                                              records, lock)) for n in range(THREADS)]
            for t in threads:
                t.start()
            time.sleep(rnd.uniform(0.3, 0.8))
            inst.kill9()
            for t in threads:
                t.join(timeout=60)
            port = inst.start()
            stored = collections.Counter((it["address"], it["blob"]) for it in inst.items())
            lost_in_flight = [r for r in records
                              if r.outcome in (UNKNOWN, UNSENT) and not stored[(r.rcpt, r.sha)]]
            if len(lost_in_flight) >= 10:
                break
        # the MTA retries everything that was not acknowledged, and gets 250 this time
        retried = [r for r in records if r.outcome in (UNKNOWN, UNSENT)]
        c = LMTP(port)
        for r in retried:
            msg = make_message(r.msgid, r.size, to=r.rcpt)
            self.assertEqual(sha256_hex(msg), r.sha)
            stored = collections.Counter((it["address"], it["blob"]) for it in inst.items())
            if stored[(r.rcpt, r.sha)]:
                continue  # stored before the crash; a real MTA would retry it too (dup by design)
            _, _, dr = c.transaction("sender@remote.test", [r.rcpt], msg)
            self.assertEqual(dr[r.rcpt].code, 250, str(dr[r.rcpt]))
            r.outcome = ACK
        c.close()
        self.assertEqual(inst.stop(), 0)
        before = collections.Counter((it["address"], it["blob"]) for it in inst.items())
        # recovery: the database is rebuilt from the ingress cache
        r = inst.cli("replay", "--since", "-1d", expect=None)
        after = collections.Counter((it["address"], it["blob"]) for it in inst.items())
        twice = [(x.msgid, x.rcpt) for x in records
                 if x.outcome == ACK and after[(x.rcpt, x.sha)] > 1]
        print(f"\nretry/replay: {len(retried)} unacknowledged messages retried; {r.out.splitlines()[0]}")
        self.assertEqual(twice, [], f"messages stored twice after MTA retry + replay\n{r}")
        self.assertEqual(after, before, str(r))


if __name__ == "__main__":
    h.main()
