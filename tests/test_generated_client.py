"""A third-party client generator (openapi-python-client) on the served document, driven against the server.

The document is only useful if real generators turn it into clients that work: a nullable enum the server sends
as null once crashed such a client (``None is not a valid ProfileGender``), and operations without ids and tags
came out as path-named functions in one ``default`` module. This generates a client from ``/api/v1/openapi.json``
as a mobile team would, imports it, and logs in, reads and edits a new user's profile, reads the feed and swipes.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import sys
from pathlib import Path
from typing import Any

from tests.conftest import new_phone, unique_city

GENERATOR = Path(sys.executable).parent / "openapi-python-client"


class Operations:
    """``swiper_client.api.<tag>.<operation>`` modules, by attribute: a tag's functions as the generator names them."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __getattr__(self, operation: str) -> Any:
        return importlib.import_module(f"swiper_client.api.{self.tag}.{operation}")


async def test_a_generated_client_logs_in_edits_and_swipes(app_url, client, sms_stub, make_person, tmp_path):
    document = tmp_path / "openapi.json"
    document.write_bytes((await client.get("/api/v1/openapi.json")).body)
    config = tmp_path / "config.yaml"
    config.write_text("post_hooks: []\nproject_name_override: swiper-client\npackage_name_override: swiper_client\n")
    generator = await asyncio.create_subprocess_exec(
        str(GENERATOR), "generate", "--path", str(document), "--meta", "none", "--config", str(config),
        "--output-path", str(tmp_path / "swiper_client"), cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    output = (await asyncio.wait_for(generator.communicate(), 120))[0].decode()
    assert generator.returncode == 0 and "Warning" not in output, output
    sys.path.insert(0, str(tmp_path))
    try:
        api = importlib.import_module("swiper_client")
        models = importlib.import_module("swiper_client.models")
        auth = Operations("auth")
        profile = Operations("profile")
        social = Operations("social")

        city = unique_city()
        someone = await make_person(gender="male", city=city, dating_gender="female")
        anonymous = api.Client(base_url=app_url)
        phone = new_phone()
        sent = await auth.send_login_code.asyncio(client=anonymous, body=models.SendCode(phone=phone))
        assert isinstance(sent, models.SendLoginCodeResponse200) and sent.data.resend_after == 60
        session = await auth.log_in.asyncio(client=anonymous,
                                            body=models.LogIn(phone=phone, code=sms_stub.last_code(phone)))
        assert isinstance(session, models.LogInResponse200), session
        assert session.data.is_new_user and session.data.user.gender is None  # a null enum, parsed
        me = api.AuthenticatedClient(base_url=app_url, token=session.data.access_token)

        mine = await profile.get_my_profile.asyncio(client=me)
        assert mine.data.id == session.data.user.id and mine.data.preferences.dating_gender is None
        patch = models.ProfilePatch(gender=models.ProfilePatchGender.FEMALE, location=city,
                                    birthday=dt.date(1998, 4, 2),
                                    preferences=models.PreferencesPatch(
                                        dating_gender=models.PreferencesPatchDatingGenderType0.MALE))
        edited = await profile.update_my_profile.asyncio(client=me, body=patch)
        assert isinstance(edited, models.UpdateMyProfileResponse200), edited
        assert edited.data.location == city and edited.data.age is not None

        feed = await social.get_recommendations.asyncio(client=me, limit=10)
        assert [user.id for user in feed.data.items] == [someone.id]
        swiped = await social.record_swipe.asyncio(client=me, body=models.SwipeBody(
            user_id=someone.id, action=models.SwipeBodyAction.LIKE))
        assert isinstance(swiped, models.RecordSwipeResponse200), swiped
        assert swiped.data.matched is False and swiped.data.likes_remaining == 99

        refused = await social.record_swipe.asyncio(client=me, body=models.SwipeBody(
            user_id=session.data.user.id, action=models.SwipeBodyAction.LIKE))
        assert isinstance(refused, models.Error) and refused.error == "conflict"  # errors parse too
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "swiper_client" or m.startswith("swiper_client.")]:
            del sys.modules[name]
