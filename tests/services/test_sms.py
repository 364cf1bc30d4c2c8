"""SMS senders against a local Aliyun stub that verifies signatures: the real SDK, over HTTP and HTTPS."""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import conf
from services.errors import UpstreamError
from services.sms import AliyunSmsSender, ConsoleSmsSender, build_sms_sender
from tests.stubs.aliyun_sms import AliyunSmsStub
from tests.support.slow_callbacks import SuiteStepTimer

AK, SECRET = "LTAI5tStubAccessKey", "stub-secret-0123456789abcdef"
PHONE = "13800138000"


def sms_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "swiper.sms")


def make_settings(endpoint: str, **overrides: Any) -> conf.Settings:
    values: dict[str, Any] = dict(sms_backend="aliyun", aliyun_access_key_id=AK, aliyun_access_key_secret=SECRET,
                                  aliyun_sms_endpoint=endpoint, aliyun_sms_protocol="http", sms_timeout=1.0,
                                  aliyun_sms_sign_name="Swiper 交友", aliyun_sms_template_code="SMS_465390012")
    values.update(overrides)
    return conf.load_settings({}, **values)


@pytest_asyncio.fixture
async def stub() -> AsyncIterator[AliyunSmsStub]:
    server = AliyunSmsStub(AK, SECRET)
    await server.start()
    yield server
    await server.stop()


async def send(settings: conf.Settings, code: str = "123456", phone: str = PHONE) -> None:
    sender = AliyunSmsSender(settings)
    try:
        await sender.send_code(phone, code)
    finally:
        await sender.aclose()


@pytest.mark.asyncio
async def test_success_records_phone_code_sign_and_template(stub: AliyunSmsStub) -> None:
    await send(make_settings(stub.endpoint), "482913")
    assert stub.rejected == []
    assert stub.received == [{"phone": PHONE, "sign_name": "Swiper 交友", "template_code": "SMS_465390012",
                              "template_param": {"code": "482913"}, "code": "482913"}]
    assert stub.last_code(PHONE) == "482913" and stub.last_code("13900000000") is None


@pytest.mark.asyncio
async def test_one_sender_sends_many_and_reuses_its_session(stub: AliyunSmsStub) -> None:
    sender = AliyunSmsSender(make_settings(stub.endpoint))
    try:
        for code in ("111111", "222222", "333333"):
            await sender.send_code(PHONE, code)
    finally:
        await sender.aclose()
    assert stub.codes_for(PHONE) == ["111111", "222222", "333333"]
    assert sender._transport.requests == 3   # every call went through the shared transport, none through the SDK's


@pytest.mark.asyncio
async def test_wrong_secret_is_refused_by_the_stub(stub: AliyunSmsStub, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(UpstreamError):
        await send(make_settings(stub.endpoint, aliyun_access_key_secret="not-the-secret"), "555111")
    assert stub.received == []
    assert [r["code"] for r in stub.rejected] == ["SignatureDoesNotMatch"]
    assert "SignatureDoesNotMatch" in sms_log(caplog) and "555111" not in caplog.text


@pytest.mark.asyncio
async def test_unknown_access_key_is_refused(stub: AliyunSmsStub) -> None:
    with pytest.raises(UpstreamError):
        await send(make_settings(stub.endpoint, aliyun_access_key_id="LTAI5tSomebodyElse"))
    assert [r["code"] for r in stub.rejected] == ["InvalidAccessKeyId.NotFound"]


@pytest.mark.asyncio
async def test_a_replayed_request_is_refused(stub: AliyunSmsStub) -> None:
    await send(make_settings(stub.endpoint))
    raw = stub.last_raw
    assert raw is not None
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://{stub.endpoint}{raw['uri']}", data=raw["body"],
                                headers=[(k, v) for k, v in raw["headers"] if k.lower() != "content-length"]) as r:
            assert r.status == 400
    assert [r["code"] for r in stub.rejected] == ["SignatureNonceUsed"]
    assert len(stub.received) == 1


@pytest.mark.asyncio
async def test_business_error_is_upstream_error(stub: AliyunSmsStub, caplog: pytest.LogCaptureFixture) -> None:
    stub.mode = "business_error"
    with pytest.raises(UpstreamError):
        await send(make_settings(stub.endpoint), "654321")
    assert "isv.BUSINESS_LIMIT_CONTROL" in sms_log(caplog)
    assert "654321" not in caplog.text and PHONE not in caplog.text and "138****8000" in sms_log(caplog)


@pytest.mark.asyncio
async def test_http_500_is_upstream_error_without_retry(stub: AliyunSmsStub) -> None:
    stub.mode = "http_500"
    with pytest.raises(UpstreamError):
        await send(make_settings(stub.endpoint))
    assert stub.request_count == 1


@pytest.mark.asyncio
async def test_slow_provider_is_upstream_error_within_the_timeout(stub: AliyunSmsStub) -> None:
    stub.mode = "slow"
    settings = make_settings(stub.endpoint)
    started = time.monotonic()
    with pytest.raises(UpstreamError):
        await send(settings)
    elapsed = time.monotonic() - started
    assert settings.sms_timeout * 0.9 <= elapsed < settings.sms_timeout + 1.5
    assert stub.request_count == 1


@pytest.mark.asyncio
async def test_overall_deadline_holds_even_if_the_socket_timeouts_do_not(stub: AliyunSmsStub,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(stub.endpoint, sms_timeout=0.1)
    sender = AliyunSmsSender(settings)

    async def hang(*_: Any) -> None:
        await asyncio.sleep(3600)

    monkeypatch.setattr(sender._transport, "do_action", hang)
    started = time.monotonic()
    with pytest.raises(UpstreamError):
        await sender.send_code(PHONE, "123456")
    assert settings.sms_timeout + 0.9 <= time.monotonic() - started < settings.sms_timeout + 1.5
    await sender.aclose()


@pytest.mark.asyncio
async def test_connection_refused_is_upstream_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(UpstreamError):
        await send(make_settings(f"127.0.0.1:{closed_port}"))
    assert time.monotonic() - started < 1.0


@pytest.mark.asyncio
async def test_console_sender_logs_a_masked_phone(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="swiper.sms")
    sender = build_sms_sender(conf.load_settings({}))
    assert isinstance(sender, ConsoleSmsSender)
    await sender.send_code(PHONE, "123456")
    await sender.aclose()
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("swiper.sms", logging.WARNING, "SMS code for 138****8000: 123456")]


def test_build_picks_aliyun_when_configured() -> None:
    assert isinstance(build_sms_sender(make_settings("127.0.0.1:1")), AliyunSmsSender)


def write_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A CA-flagged self-signed certificate for 127.0.0.1, so it can be its own trust anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "stub-cert.pem", directory / "stub-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.asyncio
async def test_https_sends_without_stalling_the_loop(tmp_path: Path) -> None:
    cert_path, key_path = write_self_signed_cert(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_path, key_path)
    https_stub = AliyunSmsStub(AK, SECRET, ssl_context=server_context)
    await https_stub.start()
    # Start-up work (building the client and its SSL context) may block; only sends are measured.
    sender = AliyunSmsSender(make_settings(https_stub.endpoint, aliyun_sms_protocol="https",
                                           aliyun_sms_ca_file=str(cert_path)))
    # One warm-up send: first use of the shared session, and asyncio debug mode's own first-time costs
    # (it reads source files for its tracebacks), are not what this test is about: the per-call SSL context is.
    await sender.send_code(PHONE, "100000")
    # Each loop step is timed in CPU time, less the garbage collector's (tests/support/slow_callbacks.py): the
    # stall this guards against is CPU work (an SSL context built per call, ~30 ms), and wall time would also
    # count this process being descheduled on a loaded machine.
    timer = SuiteStepTimer(threshold=0.010)
    timer.install()
    try:
        for code in ("100001", "100002", "100003", "100004", "100005"):
            await sender.send_code(PHONE, code)
    finally:
        timer.uninstall()
        await sender.aclose()
        await https_stub.stop()
    assert timer.app + timer.other == []
    assert https_stub.codes_for(PHONE) == ["100000", "100001", "100002", "100003", "100004", "100005"]


@pytest.mark.asyncio
async def test_https_refuses_a_server_the_ca_file_does_not_vouch_for(tmp_path: Path) -> None:
    cert_path, key_path = write_self_signed_cert(tmp_path)
    (tmp_path / "other").mkdir()
    other_ca, _ = write_self_signed_cert(tmp_path / "other")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_path, key_path)
    https_stub = AliyunSmsStub(AK, SECRET, ssl_context=server_context)
    await https_stub.start()
    try:
        with pytest.raises(UpstreamError):
            await send(make_settings(https_stub.endpoint, aliyun_sms_protocol="https",
                                     aliyun_sms_ca_file=str(other_ca)))
    finally:
        await https_stub.stop()
    assert https_stub.received == []
