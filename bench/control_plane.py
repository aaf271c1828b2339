"""Control-plane paging benchmark: is page 1,000 of the public hub list as cheap as page 1?

Seeds 100,000 public hubs into a temporary SQLite database (one bulk insert), runs the app
in-process over httpx's ASGI transport and prints the median latency of the first page of
``GET /v1/public/hubs`` and of a page 1,000 pages deep (cursor built from the row there),
plus their ratio. Goal: ratio <= 1.5 and the first page well under 10 ms.

    python bench/control_plane.py [--hubs 100000] [--rounds 200] [--limit 24]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import insert, select

from thalovant_server.app import create_app
from thalovant_server.config import ServerConfig
from thalovant_server.store import accounts
from thalovant_server.store.engine import Store
from thalovant_server.store.hub_spec import normalise_spec
from thalovant_server.store.models import Hub
from thalovant_server.store.pagination import Cursor

BATCH = 5_000


async def seed(url: str, count: int) -> None:
    store = await Store.open(url)
    spec = normalise_spec({"version": "1", "skills": ["jokes"]})
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    async with store.session() as session:
        owner = await accounts.create_user(session, email="bench@example.com", password_hash="x")
        workspace = (await accounts.workspace_ids(session, owner.id))[0]
    for offset in range(0, count, BATCH):
        rows = []
        for index in range(offset, min(count, offset + BATCH)):
            created = start + dt.timedelta(milliseconds=index)
            rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "slug": f"bench-{index}",
                    "public_ref": f"hub_b{index:09d}",
                    "name": f"bench-{index}",
                    "title": f"Bench hub {index}",
                    "description": "",
                    "visibility": "public",
                    "active": True,
                    "owner_id": owner.id,
                    "workspace_id": workspace,
                    "domain": None,
                    "spec": spec,
                    "etag": uuid.uuid4().hex,
                    "node_id": f"node-{uuid.uuid4().hex}",
                    "created_at": created,
                    "updated_at": created,
                }
            )
        async with store.session() as session:
            await session.execute(insert(Hub), rows)
    await store.close()


async def cursor_at(url: str, position: int) -> str:
    """The cursor whose next page starts at row ``position`` of the public ordering."""
    store = await Store.open(url, migrate=False)
    async with store.session() as session:
        row = await session.scalar(
            select(Hub)
            .where(Hub.visibility == "public", Hub.active.is_(True))
            .order_by(Hub.created_at, Hub.id)
            .offset(position - 1)
            .limit(1)
        )
    await store.close()
    assert row is not None
    return Cursor.after(row).encode()


async def median_ms(http: httpx.AsyncClient, params: dict[str, str], rounds: int) -> float:
    for _ in range(10):
        (await http.get("/v1/public/hubs", params=params)).raise_for_status()
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        response = await http.get("/v1/public/hubs", params=params)
        samples.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
    return statistics.median(samples)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hubs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--depth", type=int, default=1_000, help="how many pages deep the second page is")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="thalovant-bench-") as tmp:
        config = ServerConfig(data_dir=Path(tmp), mqtt_port=0)  # the broker on a free port
        url = config.resolved_database_url
        began = time.perf_counter()
        await seed(url, args.hubs)
        print(f"seeded {args.hubs} public hubs in {time.perf_counter() - began:.1f} s")
        deep = await cursor_at(url, args.limit * args.depth)
        app = create_app(config)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
                limit = str(args.limit)
                page = (await http.get("/v1/public/hubs", params={"limit": limit, "cursor": deep})).json()
                assert page["data"][0]["slug"] == f"bench-{args.limit * args.depth}", page["data"][0]["slug"]
                first = await median_ms(http, {"limit": limit}, args.rounds)
                deeper = await median_ms(http, {"limit": limit, "cursor": deep}, args.rounds)
    print(f"GET /v1/public/hubs?limit={args.limit}            median {first:.2f} ms")
    print(f"GET /v1/public/hubs page {args.depth} (cursor)      median {deeper:.2f} ms")
    print(f"ratio deep/first: {deeper / first:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    asyncio.run(main())
