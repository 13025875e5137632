async def test_healthz_answers(hub_app):
    resp = await hub_app.get("/healthz")
    assert resp.status == 200
    assert (await resp.json()) == {"success": True, "data": {"status": "ok"}, "message": "OK"}


async def test_readyz_checks_the_database(hub_app):
    resp = await hub_app.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["data"]["database"] == "ok"
