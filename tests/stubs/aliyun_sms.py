"""A local stand-in for Aliyun's SendSms endpoint, for tests that drive the real SDK.

It checks each request the way Aliyun does for ACS3-HMAC-SHA256 (headers, nonce, body hash, signature)
with its own implementation, not the SDK's, so a signing mistake on our side shows up as a rejection.
Runs on tornado in the test's own asyncio loop, on 127.0.0.1 and a free port, optionally over TLS.

Command-line mode, for benchmarks that run ``server.py`` with the aliyun backend (run from the repository root)::

    python -m tests.stubs.aliyun_sms --port P --access-key-id X --access-key-secret Y --codes-dir D

listens on 127.0.0.1:P only; every verified SendSms writes its code to the file ``D/<phone>`` (atomically: a
temporary name, then ``os.replace``) before it answers 200, and keeps no per-message list in memory. SIGTERM or
SIGINT stops it; it then prints ``aliyun_sms stub: requests=N sent=N rejected=N`` on stderr and exits 0.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import ssl
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, quote

import tornado.httputil
import tornado.netutil
import tornado.web

from tests.stubs.server import StubServer

ALGORITHM = "ACS3-HMAC-SHA256"
MAX_CLOCK_SKEW = timedelta(minutes=15)
# A nonce can only be replayed while its signed x-acs-date is within MAX_CLOCK_SKEW of now, i.e. at most twice
# the skew after it was first seen; older ones are forgotten, so a long-running stub stays bounded in memory.
NONCE_MEMORY = 2 * MAX_CLOCK_SKEW.total_seconds() + 60
_PHONE_FILE_NAME = re.compile(r"[0-9]{5,20}")
_AUTH_RE = re.compile(rf"^{ALGORITHM} Credential=([^,]*),SignedHeaders=([^,]*),Signature=([0-9a-f]*)$")


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


def _encode(value: str) -> str:
    """RFC 3986 encoding as Aliyun specifies it: only A-Z a-z 0-9 - _ . ~ stay as they are."""
    return quote(value, safe="~")


class AliyunSmsStub(StubServer):
    """Speaks SendSms (2017-05-25); ``mode`` picks the outcome of requests that pass verification."""

    def __init__(self, access_key_id: str, access_key_secret: str, *,
                 ssl_context: ssl.SSLContext | None = None, codes_dir: str | None = None) -> None:
        super().__init__()
        """``codes_dir``: write each delivered code to ``codes_dir/<phone>`` instead of keeping ``received``
        and ``rejected`` lists (rejections then go to stderr); the command-line mode uses it."""
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.ssl_context = ssl_context
        self.mode = "ok"
        self.slow_delay = 5.0
        self.received: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.request_count = 0
        self.sent_count = 0
        self.rejected_count = 0
        self.codes_dir = codes_dir
        self.last_raw: dict[str, Any] | None = None   # method, uri, headers, body of the last request
        self.endpoint = ""
        self._nonces: dict[str, float] = {}   # nonce -> monotonic time first seen, oldest first

    async def start(self, port: int = 0) -> None:
        if self.ssl_context is not None:
            # Tornado builds this default client context lazily on the first accepted TLS connection (~30 ms
            # of blocking); build it now so a loop-stall test does not blame the client for the stub's work.
            tornado.netutil._client_ssl_defaults()
        await self.listen([(r".*", _Handler, {"stub": self})], port=port, ssl_options=self.ssl_context)
        self.endpoint = f"127.0.0.1:{self.port}"

    def codes_for(self, phone: str) -> list[str]:
        return [r["code"] for r in self.received if r["phone"] == phone]

    def last_code(self, phone: str) -> str | None:
        codes = self.codes_for(phone)
        return codes[-1] if codes else None

    async def handle(self, request: tornado.httputil.HTTPServerRequest) -> tuple[int, dict[str, Any]]:
        """Verify, then answer per ``mode``; returns (HTTP status, JSON body)."""
        self.request_count += 1
        self.last_raw = {"method": request.method, "uri": request.uri, "body": request.body,
                         "headers": list(request.headers.get_all())}
        request_id = str(uuid.uuid4()).upper()
        try:
            params = self._verify(request)
        except _Refused as refused:
            self.rejected_count += 1
            if self.codes_dir is None:
                self.rejected.append({"reason": f"{refused.code}: {refused.message}", "code": refused.code,
                                      "status": refused.status})
            else:
                print(f"aliyun_sms stub: rejected ({refused.status}) {refused.code}: {refused.message}",
                      file=sys.stderr, flush=True)
            return refused.status, {"Code": refused.code, "Message": refused.message, "RequestId": request_id}
        if self.mode == "business_error":
            return 200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控Permits:1",
                         "RequestId": request_id}
        if self.mode == "http_500":
            return 500, {"Code": "InternalError", "RequestId": request_id,
                         "Message": "The request processing has failed due to some unknown error."}
        if self.mode == "slow":
            try:
                await asyncio.wait_for(self._stopping.wait(), self.slow_delay)
            except asyncio.TimeoutError:
                pass
        self.sent_count += 1
        if self.codes_dir is None:
            self.received.append(params)
        else:
            self._write_code(params["phone"], params["code"])
        return 200, {"Code": "OK", "Message": "OK", "BizId": f"{uuid.uuid4().int % 10**18}^0",
                     "RequestId": request_id}

    def _write_code(self, phone: str, code: str) -> None:
        """``codes_dir/<phone>`` holds the code; a reader sees the old file, none, or the whole new one."""
        assert self.codes_dir is not None
        fd, tmp = tempfile.mkstemp(prefix=f".{phone}.", dir=self.codes_dir)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(code)
            os.replace(tmp, os.path.join(self.codes_dir, phone))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _remember_nonce(self, nonce: str) -> None:
        now = time.monotonic()
        while self._nonces:
            oldest, seen = next(iter(self._nonces.items()))
            if now - seen < NONCE_MEMORY:
                break
            del self._nonces[oldest]
        if nonce in self._nonces:
            raise _Refused(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self._nonces[nonce] = now

    def _verify(self, request: tornado.httputil.HTTPServerRequest) -> dict[str, Any]:
        headers = request.headers
        if request.method != "POST":
            raise _Refused(405, "UnsupportedHTTPMethod", f"{request.method} is not supported for SendSms.")
        if request.path != "/":
            raise _Refused(404, "InvalidApi.NotFound", f"Specified api is not found: {request.path}")
        if headers.get("x-acs-action") != "SendSms":
            raise _Refused(400, "InvalidAction.NotFound", "Specified api is not found, please check your url.")
        if headers.get("x-acs-version") != "2017-05-25":
            raise _Refused(400, "InvalidVersion", "Specified parameter Version is not valid.")
        self._check_date(headers.get("x-acs-date", ""))
        nonce = headers.get("x-acs-signature-nonce", "")
        if not nonce:
            raise _Refused(400, "MissingSignatureNonce", "SignatureNonce is mandatory for this action.")
        body_hash = hashlib.sha256(request.body).hexdigest()
        if headers.get("x-acs-content-sha256") != body_hash:
            raise _Refused(400, "InvalidContentSha256", "x-acs-content-sha256 does not match the body.")
        self._check_signature(request, body_hash)
        self._remember_nonce(nonce)
        params = self._params(request)
        if self.codes_dir is not None and not _PHONE_FILE_NAME.fullmatch(params["phone"]):
            raise _Refused(400, "isv.MOBILE_NUMBER_ILLEGAL", "One phone number of digits only, please.")
        return params

    @staticmethod
    def _check_date(raw: str) -> None:
        try:
            sent = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            raise _Refused(400, "InvalidTimeStamp.Format", f"Specified time stamp is not valid: {raw!r}") from None
        if abs(datetime.now(timezone.utc) - sent) > MAX_CLOCK_SKEW:
            raise _Refused(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")

    def _check_signature(self, request: tornado.httputil.HTTPServerRequest, body_hash: str) -> None:
        match = _AUTH_RE.match(request.headers.get("Authorization", ""))
        if match is None:
            raise _Refused(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.")
        access_key_id, signed_list, signature = match.groups()
        if access_key_id != self.access_key_id:
            raise _Refused(403, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        signed = signed_list.split(";")
        present = {name.lower() for name in request.headers}
        must_sign = {"host"} | {n for n in present if n.startswith("x-acs-")}
        if signed != sorted(set(signed)) or not must_sign <= set(signed) or not set(signed) <= present:
            raise _Refused(400, "IncompleteSignature", f"SignedHeaders is not valid: {signed_list}")
        canonical_headers = "".join(
            f"{name}:{','.join(sorted(v.strip() for v in request.headers.get_list(name)))}\n" for name in signed)
        pairs = sorted((_encode(k), _encode(v)) for k, v in parse_qsl(request.query, keep_blank_values=True))
        canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
        canonical_request = "\n".join([request.method or "", quote(request.path, safe="/~"), canonical_query,
                                       canonical_headers, signed_list, body_hash])
        string_to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        expected = hmac.new(self.access_key_secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise _Refused(400, "SignatureDoesNotMatch", "Specified signature does not match our calculation. "
                                                         f"server string to sign is:{string_to_sign}")

    @staticmethod
    def _params(request: tornado.httputil.HTTPServerRequest) -> dict[str, Any]:
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not query.get(name):
                raise _Refused(400, f"Missing{name}", f"{name} is mandatory for this action.")
        try:
            template_param = json.loads(query.get("TemplateParam", "{}"))
        except ValueError:
            raise _Refused(400, "isv.INVALID_JSON_PARAM", "TemplateParam is not valid JSON.") from None
        code = template_param.get("code") if isinstance(template_param, dict) else None
        if not isinstance(code, str) or not re.fullmatch(r"\d{6}", code):
            raise _Refused(400, "isv.TEMPLATE_PARAMS_ILLEGAL", "TemplateParam needs a 6-digit \"code\".")
        return {"phone": query["PhoneNumbers"], "sign_name": query["SignName"],
                "template_code": query["TemplateCode"], "template_param": template_param, "code": code}


class _Handler(tornado.web.RequestHandler):
    def initialize(self, stub: AliyunSmsStub) -> None:
        self.stub = stub

    async def _answer(self) -> None:
        status, body = await self.stub.handle(self.request)
        self.set_status(status)
        self.set_header("Content-Type", "application/json;charset=utf-8")
        self.finish(json.dumps(body, ensure_ascii=False))

    get = post = put = delete = patch = _answer  # non-POST methods are refused by the stub, like Aliyun

    def check_xsrf_cookie(self) -> None:
        pass


async def _serve(args: argparse.Namespace) -> None:
    stub = AliyunSmsStub(args.access_key_id, args.access_key_secret, codes_dir=args.codes_dir)
    await stub.start(args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"aliyun_sms stub: listening on {stub.endpoint}, codes in {args.codes_dir}", flush=True)
    try:
        await stop.wait()
    finally:
        await stub.stop()
        print(f"aliyun_sms stub: requests={stub.request_count} sent={stub.sent_count} "
              f"rejected={stub.rejected_count}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.stubs.aliyun_sms",
                                     description="Aliyun SendSms stand-in on 127.0.0.1 that writes codes to files.")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--access-key-id", required=True)
    parser.add_argument("--access-key-secret", required=True)
    parser.add_argument("--codes-dir", required=True, help="existing directory; a code goes to CODES_DIR/<phone>")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error("--port must be 1..65535")
    if not os.path.isdir(args.codes_dir):
        parser.error(f"--codes-dir {args.codes_dir!r} is not a directory")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
