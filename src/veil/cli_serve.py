"""``veil serve`` and ``veil token create``: shells over :mod:`veil.server` and :mod:`veil.store`.

The lead's ``veil.cli`` calls :func:`register` on its Typer app. The model and stage options
are ``veil scan``'s, parsed by the same helpers (:func:`veil.cli.parse_params`,
:func:`veil.cli.parse_floats`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from veil.errors import InvalidParameterError, VeilError

DB_HELP = "Database URL (default: SQLite at DATA/veil.db), e.g. postgresql+psycopg://veil@localhost/veil."
DATA_HELP = "Data folder: blobs (originals, delivered images, masks) and the default SQLite database."


def safeguard_config(*, model: list[str], attribution: str, segmentation: str, merge: float | None,
                     segment_size: int, coarser: str, search_size: int, search: str, style: str, extent: str,
                     max_depth: int, threshold: float | None, batch_size: int, seed: int, param: list[str],
                     rationale: str, max_pixels: int) -> Any:
    """The :class:`~veil.pipeline.SafeguardConfig` of ``veil scan``'s options."""
    from veil.cli import parse_floats, parse_params
    from veil.pipeline import SafeguardConfig

    stages = parse_params(param)
    return SafeguardConfig(
        models=tuple(model), attribution=attribution, segmentation=segmentation, search=search, extent=extent,
        style=style, max_depth=max_depth, threshold=threshold, batch_size=batch_size, seed=seed,
        merge=merge, segment_size=segment_size or None, coarser=parse_floats(coarser, "--coarser"),
        search_size=search_size or None, max_pixels=max_pixels,
        rationale=None if rationale.lower() == "none" else rationale,
        attribution_options=stages["attribution"], segmentation_options=stages["segmentation"],
        search_options=stages["search"], style_options=stages["style"], rationale_options=stages["rationale"],
    )


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``token create`` to ``app``.

    Examples
    --------
    >>> import typer
    >>> app = typer.Typer()
    >>> register(app)
    """
    from veil.cli_common import fail

    @app.command("serve")
    def serve(
        db: str | None = typer.Option(None, "--db", help=DB_HELP),
        data: Path = typer.Option(Path("veil-data"), "--data", help=DATA_HELP),
        host: str = typer.Option("127.0.0.1", help="Address to listen on."),
        port: int = typer.Option(8000, help="Port to listen on."),
        workers: int = typer.Option(1, help="Worker threads; each loads the models once."),
        lease: float = typer.Option(30.0, help="Seconds a job stays leased without a heartbeat (a dead worker's jobs restart after this)."),
        max_attempts: int = typer.Option(3, help="Times a job is started before it fails."),
        max_upload_mb: float = typer.Option(25.0, help="Largest accepted upload, in MiB."),
        rate_limit: float = typer.Option(600.0, help="Requests per minute per token (0: no limit)."),
        near: float = typer.Option(0.1, help="Safe images this close to a threshold still go to the review queue."),
        secure_cookies: bool = typer.Option(False, "--secure-cookies", help="Mark cookies Secure (behind HTTPS)."),
        model: list[str] = typer.Option(["nudenet"], "--model", "-m", help="Classifier: a registered name or a model card JSON. Repeat for several."),
        attribution: str = typer.Option("fullgrad", help="Attribution method (veil list)."),
        segmentation: str = typer.Option("bass", help="Segmenter (veil list)."),
        merge: float | None = typer.Option(None, help="Join touching segments closer than this in Lab colour (as veil scan)."),
        segment_size: int = typer.Option(640, help="Segment on a copy at most this many pixels on the longer side (0: full)."),
        coarser: str = typer.Option("30", help="Larger merge thresholds retried before failing closed ('none')."),
        search_size: int = typer.Option(1024, help="Attribute, segment and search on a copy at most this size (0: full)."),
        search: str = typer.Option("greedy", help="Search strategy: greedy, subset, csra."),
        style: str = typer.Option("blur", help="Obfuscation style: blur, pixelate, fill."),
        extent: str = typer.Option("object", help="How much to hide: object or minimal."),
        max_depth: int = typer.Option(10, help="Most regions to obfuscate before failing closed."),
        threshold: float | None = typer.Option(None, help="Unsafe threshold for every model (default: each model's own)."),
        batch_size: int = typer.Option(8, help="Candidate images classified per batch during the search."),
        seed: int = typer.Option(0, help="Seed for randomized stages; recorded in each result."),
        param: list[str] = typer.Option([], "--param", "-p", help="Stage option STAGE.NAME=VALUE. Repeatable."),
        rationale: str = typer.Option("grounded", help="Rationale backend: grounded, transformers, openai, or none."),
        max_pixels: int = typer.Option(64_000_000, help="Refuse uploads with more pixels (decompression-bomb guard)."),
        log_level: str = typer.Option("info", help="uvicorn log level."),
    ) -> None:
        """Run the moderator review service: the HTTP API, the workers and the review page.

        Example: veil serve --model examples/demo-model/model.json --data /srv/veil
        """
        try:
            import uvicorn

            from veil.server import ServiceSettings, create_app

            config = safeguard_config(
                model=model, attribution=attribution, segmentation=segmentation, merge=merge,
                segment_size=segment_size, coarser=coarser, search_size=search_size, search=search, style=style,
                extent=extent, max_depth=max_depth, threshold=threshold, batch_size=batch_size, seed=seed,
                param=param, rationale=rationale, max_pixels=max_pixels)
            if max_upload_mb <= 0:
                raise InvalidParameterError(f"--max-upload-mb must be positive, got {max_upload_mb}")
            settings = ServiceSettings(db=db, data=data, safeguard=config, workers=workers, lease=lease,
                                       max_attempts=max_attempts, max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                                       rate_limit=rate_limit, near=near, secure_cookies=secure_cookies)
            app_ = create_app(settings)
        except VeilError as exc:
            fail(exc)
            return
        typer.echo(f"veil serve: http://{host}:{port}/review (API docs: /docs) · data {data} · "
                   f"{'database ' + db.split('@')[-1] if db else 'SQLite'} · {workers} worker(s)", err=True)
        uvicorn.run(app_, host=host, port=port, log_level=log_level)

    token_app = typer.Typer(help="Manage API tokens (the secret is printed once; only its hash is stored).",
                            no_args_is_help=True)

    @token_app.command("create")
    def token_create(
        role: str = typer.Option(..., "--role", help="submitter, moderator or admin."),
        name: str = typer.Option(..., "--name", help="Who or what uses the token (shown in the audit log)."),
        db: str | None = typer.Option(None, "--db", help=DB_HELP),
        data: Path = typer.Option(Path("veil-data"), "--data", help=DATA_HELP),
    ) -> None:
        """Create a token and print it once (last line of output)."""
        try:
            from veil.store import Store

            store = Store.open(db, data)
            try:
                tok, secret = store.create_token(name, role)
            finally:
                store.close()
        except VeilError as exc:
            fail(exc)
            return
        typer.echo(f"created {tok.role} token #{tok.id} for {tok.name!r}; it is shown only now:", err=True)
        typer.echo(secret)

    @token_app.command("list")
    def token_list(
        db: str | None = typer.Option(None, "--db", help=DB_HELP),
        data: Path = typer.Option(Path("veil-data"), "--data", help=DATA_HELP),
    ) -> None:
        """List tokens (ids, names, roles; never secrets)."""
        try:
            from veil.store import Store

            store = Store.open(db, data)
            try:
                for t in store.tokens():
                    state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active"
                    typer.echo(f"{t.id}\t{t.role}\t{t.name}\t{state}")
            finally:
                store.close()
        except VeilError as exc:
            fail(exc)

    app.add_typer(token_app, name="token")
