"""A recording proxy that checks every request's SigV4 signature with
botocore, a signer this project did not write. Run by tests/e2e/signing.rs:

    python sigv4_proxy.py UPSTREAM_URL ACCESS_KEY SECRET_KEY

It listens on 127.0.0.1 (a free port, printed as the first line of stdout),
forwards every request to UPSTREAM_URL and returns the upstream's status,
headers and body unchanged. Two paths are its own and not forwarded:

    POST /_tag   the body becomes the tag of the requests that follow
    GET  /_log   the JSON list of what was recorded, one record per request

A record holds the tag, X-Amz-Target, Content-Type, User-Agent (which
tells the clients apart), the parsed JSON body,
the Authorization header's credential scope and SignedHeaders, and whether
the signature verifies: recomputed by botocore's SigV4Auth with the secret
given here, the region and service of the request's own credential scope,
its X-Amz-Date as the signing time and exactly the headers it says it
signed.
"""
import hashlib
import http.client
import http.server
import json
import sys
import threading
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

UPSTREAM = urllib.parse.urlsplit(sys.argv[1])
ACCESS_KEY = sys.argv[2]
SECRET_KEY = sys.argv[3]
# Above the 60 s (AWS) or shorter (embedded endpoint) long polls.
UPSTREAM_TIMEOUT = 75
# Not forwarded: hop-by-hop, or recomputed for the body sent on.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer",
              "upgrade", "proxy-connection", "content-length"}

lock = threading.Lock()
tag = ""
records = []


def parse_authorization(value):
    """`AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/SERVICE/aws4_request,
    SignedHeaders=a;b, Signature=hex` as a dict of its three parts."""
    algorithm, _, rest = value.partition(" ")
    parts = {"algorithm": algorithm}
    for item in rest.split(","):
        key, _, val = item.strip().partition("=")
        parts[key] = val
    return parts


def verify(method, path, headers, body):
    """Checks the request's signature with botocore; returns a dict for the
    record (verified, and what botocore computed when it does not match)."""
    auth = headers.get("Authorization")
    if auth is None:
        return {"verified": False, "why": "no Authorization header"}
    parts = parse_authorization(auth)
    credential = parts.get("Credential", "").split("/")
    signed = parts.get("SignedHeaders", "")
    out = {
        "algorithm": parts["algorithm"],
        "access_key": credential[0] if credential else None,
        "scope": "/".join(credential[1:]),
        "signed_headers": signed.split(";") if signed else [],
    }
    if parts["algorithm"] != "AWS4-HMAC-SHA256" or len(credential) != 5:
        return dict(out, verified=False, why=f"not a SigV4 Authorization: {auth}")
    access_key, date, region, service, terminator = credential
    amz_date = headers.get("X-Amz-Date")
    if access_key != ACCESS_KEY or terminator != "aws4_request" or not amz_date \
            or amz_date[0:8] != date:
        return dict(out, verified=False,
                    why=f"credential {credential} does not match {ACCESS_KEY} / X-Amz-Date {amz_date}")
    # Exactly the headers the request says it signed, with the values sent.
    names = out["signed_headers"]
    missing = [n for n in names if headers.get(n) is None]
    if missing:
        return dict(out, verified=False, why=f"signed headers not sent: {missing}")
    request_headers = {n: ",".join(headers.get_all(n)) for n in names}
    host = headers.get("Host", "")
    request = AWSRequest(method=method, url=f"http://{host}{path}",
                         headers=request_headers, data=body)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), service, region)
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    expected = signer.signature(string_to_sign, request)
    botocore_signed = signer.signed_headers(signer.headers_to_sign(request))
    got = parts.get("Signature", "")
    verified = expected == got and botocore_signed == signed
    out["verified"] = verified
    if not verified:
        out.update(why="signature mismatch", expected=expected, got=got,
                   botocore_signed_headers=botocore_signed,
                   canonical_request=canonical, string_to_sign=string_to_sign)
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def answer(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_log":
            with lock:
                body = json.dumps(records).encode()
            return self.answer(200, "application/json", body)
        self.forward()

    def do_POST(self):
        if self.path == "/_tag":
            global tag
            with lock:
                tag = self.read_body().decode()
            return self.answer(200, "text/plain", b"ok")
        self.forward()

    def do_PUT(self):
        self.forward()

    def do_DELETE(self):
        self.forward()

    def forward(self):
        body = self.read_body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = {"_not_json": body.decode("utf-8", "replace")}
        try:
            check = verify(self.command, self.path, self.headers, body)
        except Exception as e:  # a bug here must show as a failed check
            check = {"verified": False, "why": f"verifier raised {e!r}"}
        with lock:
            record = dict(check, tag=tag, method=self.command, path=self.path,
                          target=self.headers.get("X-Amz-Target"),
                          content_type=self.headers.get("Content-Type"),
                          user_agent=self.headers.get("User-Agent"),
                          body=parsed,
                          body_sha256=hashlib.sha256(body).hexdigest())
            records.append(record)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        try:
            conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port,
                                              timeout=UPSTREAM_TIMEOUT)
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            status, reason = response.status, response.reason
            answer_headers = response.getheaders()
            conn.close()
        except Exception as e:
            with lock:
                record["upstream_error"] = repr(e)
            return self.answer(502, "text/plain", f"proxy: {e!r}".encode())
        with lock:
            record["status"] = status
        try:
            self.send_response_only(status, reason)
            for name, value in answer_headers:
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
        except OSError:
            # The client gave up (a worker stopping mid-poll).
            self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
