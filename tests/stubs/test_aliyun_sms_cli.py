"""The Aliyun stub's command-line mode (what bench/full.py runs): a subprocess that writes codes to files."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conf import Settings
from services.errors import UpstreamError
from tests.services.test_sms import send
from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, ROOT
from tests.support.processes import free_port


async def _wait_for_port(proc: subprocess.Popen, port: int, timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the stub exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"the stub did not listen on {port} within {timeout} s")


async def _wait_exit(proc: subprocess.Popen, timeout: float = 10) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while proc.poll() is None and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        raise AssertionError("the stub ignored SIGTERM")
    return proc.returncode


@pytest.mark.asyncio
async def test_cli_mode_writes_each_code_to_a_file_and_stops_on_sigterm(settings: Settings, tmp_path: Path) -> None:
    codes = tmp_path / "codes"
    codes.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.stubs.aliyun_sms", "--port", str(port), "--access-key-id", ACCESS_KEY_ID,
         "--access-key-secret", ACCESS_KEY_SECRET, "--codes-dir", str(codes)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        await _wait_for_port(proc, port)
        stub_settings = settings.replace(aliyun_sms_endpoint=f"127.0.0.1:{port}")
        await send(stub_settings, "482913", "15500000042")
        assert (codes / "15500000042").read_text() == "482913"
        await send(stub_settings, "000017", "15500000042")   # a newer code replaces the file
        assert (codes / "15500000042").read_text() == "000017"

        with pytest.raises(UpstreamError):   # a bad signature is refused and writes nothing
            await send(stub_settings.replace(aliyun_access_key_secret="wrong-secret"), "111111",
                       "15500000043")
        assert sorted(p.name for p in codes.iterdir()) == ["15500000042"]   # no temporary files left

        proc.send_signal(signal.SIGTERM)
        assert await _wait_exit(proc) == 0
        out, err = proc.communicate(timeout=5)
        assert f"listening on 127.0.0.1:{port}" in out
        assert "requests=3 sent=2 rejected=1" in err and "SignatureDoesNotMatch" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
