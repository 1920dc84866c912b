"""An S3 server on loopback for tests of the backup repository's S3 tier: s3rver from npm
(tests/npm), behind a small proxy that checks every request's AWS SigV4 signature as S3 does.

s3rver 3.7.1 stores objects and speaks the S3 REST API, but it does not check V4 signatures
(its code says "Signature version 4 calculation is unimplemented"): without the proxy a
client that signs wrongly would pass here and fail against real S3. The proxy recomputes the
signature independently of libcurl (canonical URI and query re-encoded from their decoded
form, x-amz-content-sha256 compared with the body) and answers 403 SignatureDoesNotMatch, or
400 like S3, before anything reaches s3rver. Python standard library only.

    with s3_server() as s3:           # s3.endpoint, s3.bucket, s3.access_key, ...
        os.environ.update(s3.env())   # MAILARK_TEST_S3_* for the C++ test

    python3 tests/integration/s3_server.py              # prints the exports, runs until ^C
    python3 tests/integration/s3_server.py CMD ARGS...  # runs CMD with MAILARK_TEST_S3_* set

The node modules come from `npm ci --prefix tests/npm`.
"""

import contextlib
import dataclasses
import hashlib
import hmac
import http.client
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from xml.sax.saxutils import escape as xml_escape

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NPM_DIR = os.path.join(REPO, "tests", "npm")
S3RVER_BIN = os.path.join(NPM_DIR, "node_modules", "s3rver", "bin", "s3rver.js")

# s3rver's one built-in account; it rejects any other access key.
ACCESS_KEY = "S3RVER"
SECRET_KEY = "S3RVER"
REGION = "us-east-1"
# Virtual-host requests go to <bucket>.s3.localhost, which curl resolves to loopback itself.
SERVICE_HOST = "s3.localhost"


@dataclasses.dataclass
class S3Server:
    endpoint: str  # "http://127.0.0.1:PORT": path-style, signatures checked
    vhost_endpoint: str  # "http://s3.localhost:PORT": for virtual-host-style requests
    bucket: str
    access_key: str
    secret_key: str
    region: str
    directory: str  # s3rver's data directory
    checks_signatures: bool  # whether the signature-checking proxy is in front
    rejected: list  # one line per request the proxy refused (signature errors and the like)

    def env(self):
        """The MAILARK_TEST_S3_* variables that s3_backend_test reads."""
        return {
            "MAILARK_TEST_S3_ENDPOINT": self.endpoint,
            "MAILARK_TEST_S3_VHOST_ENDPOINT": self.vhost_endpoint,
            "MAILARK_TEST_S3_BUCKET": self.bucket,
            "MAILARK_TEST_S3_ACCESS_KEY": self.access_key,
            "MAILARK_TEST_S3_SECRET_KEY": self.secret_key,
            "MAILARK_TEST_S3_REGION": self.region,
            "MAILARK_TEST_S3_CHECKS_SIGNATURES": "1" if self.checks_signatures else "",
        }


def node_binary():
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        raise RuntimeError("node is not installed (Debian package nodejs)")
    return node


@contextlib.contextmanager
def s3_server(bucket="mailark-test", check_signatures=True, log=None):
    """Starts s3rver in a fresh temporary directory with `bucket` created, and (unless
    check_signatures is False) the signature-checking proxy in front of it. Yields an S3Server
    once both answer; stops both and removes the directory on exit. `log` receives s3rver's
    output (default: discarded)."""
    if not os.path.exists(S3RVER_BIN):
        raise RuntimeError(f"{S3RVER_BIN} is missing: run `npm ci --prefix tests/npm`")
    directory = tempfile.mkdtemp(prefix="mailark-s3-")
    proc = None
    proxy = None
    try:
        # Port 0: s3rver binds a free port and prints it, so two runs never race for one.
        # s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only
        # has in its legacy provider: without the flag every truncated listing is a 500.
        proc = subprocess.Popen(
            [node_binary(), "--openssl-legacy-provider", S3RVER_BIN, "--directory", directory,
             "--address", "127.0.0.1", "--port", "0", "--service-endpoint", "localhost",
             "--configure-bucket", bucket] + ([] if log else ["--silent"]),
            stdout=subprocess.PIPE, stderr=log or subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            text=True, start_new_session=True)
        port = _read_port(proc, timeout=30)
        # Keep draining s3rver's stdout so its request log can never fill the pipe.
        threading.Thread(target=_drain, args=(proc.stdout, log), daemon=True).start()
        upstream = ("127.0.0.1", port)
        _wait_for_bucket(upstream, bucket, timeout=30)
        rejected = []
        if check_signatures:
            proxy = _SigningProxy(upstream, rejected)
            threading.Thread(target=proxy.serve_forever, args=(0.05,), daemon=True).start()
            port = proxy.server_address[1]
        yield S3Server(endpoint=f"http://127.0.0.1:{port}",
                       vhost_endpoint=f"http://{SERVICE_HOST}:{port}", bucket=bucket,
                       access_key=ACCESS_KEY, secret_key=SECRET_KEY, region=REGION,
                       directory=directory, checks_signatures=check_signatures,
                       rejected=rejected)
    finally:
        if proxy:
            proxy.shutdown()
            proxy.server_close()
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(directory, ignore_errors=True)


def _read_port(proc, timeout):
    """s3rver prints "S3rver listening on 127.0.0.1:PORT" once it accepts connections."""
    result = []

    def read():
        for line in proc.stdout:
            m = re.search(r"S3rver listening on \S+:(\d+)", line)
            if m:
                result.append(int(m.group(1)))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not result:
        code = proc.poll()
        raise RuntimeError(f"s3rver did not start within {timeout}s (exit status {code})")
    return result[0]


def _drain(stream, log):
    for line in stream:
        if log:
            log.write(line)


def _wait_for_bucket(upstream, bucket, timeout):
    # An unsigned HEAD is an anonymous request, which s3rver answers without checking keys.
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection(*upstream, timeout=5)
            conn.request("HEAD", "/" + bucket)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"bucket {bucket} did not appear within {timeout}s")
        time.sleep(0.1)


# --- SigV4 as S3 checks it ------------------------------------------------------------------

_SAFE = "-_.~"  # RFC 3986 unreserved besides letters and digits: never percent-encoded
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "te", "upgrade",
               "proxy-connection"}


def _uri_encode(text):
    return urllib.parse.quote(text, safe=_SAFE)


def canonical_uri(raw_path):
    """Each segment decoded and encoded again the AWS way, so a client that encodes
    differently from S3 (say, leaves '+' or '!' as they are) is caught."""
    segments = raw_path.split("/")
    return "/".join(_uri_encode(urllib.parse.unquote(s)) for s in segments) or "/"


def canonical_query(raw_query):
    pairs = []
    for item in raw_query.split("&") if raw_query else []:
        name, _, value = item.partition("=")
        pairs.append((_uri_encode(urllib.parse.unquote(name)),
                      _uri_encode(urllib.parse.unquote(value))))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def check_sigv4(method, raw_target, headers, body, access_key, secret_key, region):
    """None when the request is signed as S3 requires, else (status, code, message).
    `headers` is a list of (name, value) as received."""
    by_name = {}
    for name, value in headers:
        by_name.setdefault(name.lower(), []).append(value)
    auth = ",".join(by_name.get("authorization", []))
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,"
                     r"\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})", auth)
    if not m:
        return 400, "AuthorizationHeaderMalformed", f"bad Authorization header: {auth!r}"
    key, date, scope_region, service, signed, signature = m.groups()
    if key != access_key:
        return 403, "InvalidAccessKeyId", f"unknown access key {key}"
    if scope_region != region or service != "s3":
        return (400, "AuthorizationHeaderMalformed",
                f"scope {scope_region}/{service}, expected {region}/s3")
    amz_date = ",".join(by_name.get("x-amz-date", []))
    if not amz_date.startswith(date):
        return 403, "AccessDenied", f"x-amz-date {amz_date!r} does not match scope date {date}"
    content_sha = ",".join(by_name.get("x-amz-content-sha256", []))
    if not content_sha:
        return (400, "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256")
    if content_sha != "UNSIGNED-PAYLOAD" and content_sha != hashlib.sha256(body).hexdigest():
        return 400, "XAmzContentSHA256Mismatch", "x-amz-content-sha256 is not the body's hash"
    signed_names = signed.split(";")
    must_sign = {"host"} | {n for n in by_name if n.startswith("x-amz-")}
    if signed_names != sorted(signed_names) or not must_sign <= set(signed_names):
        return (403, "AccessDenied",
                f"SignedHeaders {signed} must be sorted and cover {sorted(must_sign)}")
    canonical_headers = "".join(
        f"{n}:{','.join(' '.join(v.split()) for v in by_name.get(n, []))}\n" for n in signed_names)
    path, _, query = raw_target.partition("?")
    canonical_request = "\n".join([method, canonical_uri(path), canonical_query(query),
                                   canonical_headers, signed, content_sha])
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, f"{date}/{region}/s3/aws4_request",
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    signing_key = ("AWS4" + secret_key).encode()
    for part in (date, region, "s3", "aws4_request"):
        signing_key = _hmac(signing_key, part)
    expected = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return 403, "SignatureDoesNotMatch", (
            "The request signature we calculated does not match the signature you provided. "
            f"Canonical request: {canonical_request!r}")
    return None


class _SigningProxy(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream, rejected):
        self.upstream = upstream
        self.rejected = rejected
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue answered for curl's PUTs

    def log_message(self, format, *args):
        pass

    def _reply(self, status, headers, body, head=False):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if not head or not any(n.lower() == "content-length" for n, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status, code, message):
        self.server.rejected.append(f"{self.command} {self.path}: {code}: {message}")
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{xml_escape(message)}</Message></Error>").encode()
        self._reply(status, [("Content-Type", "application/xml")], body,
                    head=self.command == "HEAD")

    def _handle(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # Like S3 for a plain PUT: the length must be known up front.
            self.close_connection = True
            return self._error(411, "MissingContentLength", "chunked body without Content-Length")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        problem = check_sigv4(self.command, self.path, self.headers.items(), body, ACCESS_KEY,
                              SECRET_KEY, REGION)
        if problem:
            return self._error(*problem)
        conn = http.client.HTTPConnection(*self.server.upstream, timeout=120)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    conn.putheader(name, value)
            if body or self.command in ("PUT", "POST"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
            headers = [(n, v) for n, v in resp.getheaders()
                       if n.lower() not in _HOP_BY_HOP and
                       (self.command == "HEAD" or n.lower() != "content-length")]
            self._reply(resp.status, headers, data, head=self.command == "HEAD")
        finally:
            conn.close()

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _handle


def main(argv):
    with s3_server() as s3:
        env = s3.env()
        if argv:
            result = subprocess.run(argv, env={**os.environ, **env})
            for line in s3.rejected:
                print(f"s3_server: rejected {line}", file=sys.stderr)
            return result.returncode
        for name, value in env.items():
            print(f"export {name}={value}")
        print(f"# s3rver data in {s3.directory}; ^C stops it", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
