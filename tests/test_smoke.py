from __future__ import annotations

from tests.api import Api


async def test_sign_up_post_and_read_own_feed(api: Api) -> None:
    alice = await api.sign_up("alice")
    post_id = await api.post(alice, "hello")
    assert await api.whole_feed(alice) == [post_id]
