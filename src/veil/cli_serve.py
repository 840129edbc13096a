"""``veil serve`` and ``veil token create``: shells over :mod:`veil.server` and :mod:`veil.store`.

``veil.cli`` calls :func:`register` on its Typer app. The model and stage options are
``veil scan``'s: the same declarations and the same :func:`veil.cli_common.pipeline_config`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from veil.cli_common import (
    AttributionOpt,
    BatchSizeOpt,
    CoarserOpt,
    ExtentOpt,
    LightGroup,
    MaxDepthOpt,
    MaxPixelsOpt,
    MergeOpt,
    ModelOpt,
    ParamOpt,
    RationaleOpt,
    RegistryHelpCommand,
    SearchOpt,
    SearchSizeOpt,
    SeedOpt,
    SegmentationOpt,
    SegmentSizeOpt,
    StyleOpt,
    ThresholdOpt,
    fail,
    pipeline_config,
)
from veil.errors import InvalidParameterError, VeilError

if TYPE_CHECKING:
    from veil.store import Store

DB_HELP = "Database URL (default: SQLite at DATA/veil.db), e.g. postgresql+psycopg://veil@localhost/veil."
DATA_HELP = "Data folder: blobs (originals, delivered images, masks) and the default SQLite database."


@contextmanager
def _store(db: str | None, data: Path) -> Iterator[Store]:
    """The service's store, opened for one command and closed after it."""
    from veil.store import Store

    store = Store.open(db, data)
    try:
        yield store
    finally:
        store.close()


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``token create`` to ``app``.

    Examples
    --------
    >>> import typer
    >>> app = typer.Typer()
    >>> register(app)
    """

    @app.command("serve", cls=RegistryHelpCommand)
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
        model: ModelOpt = ["nudenet"],  # noqa: B006 - Typer declares defaults in the signature
        attribution: AttributionOpt = "fullgrad",
        segmentation: SegmentationOpt = "bass",
        merge: MergeOpt = None,
        segment_size: SegmentSizeOpt = 640,
        coarser: CoarserOpt = "30",
        search_size: SearchSizeOpt = 1024,
        search: SearchOpt = "greedy",
        style: StyleOpt = "blur",
        extent: ExtentOpt = "object",
        max_depth: MaxDepthOpt = 10,
        threshold: ThresholdOpt = None,
        batch_size: BatchSizeOpt = 8,
        seed: SeedOpt = 0,
        param: ParamOpt = [],  # noqa: B006
        rationale: RationaleOpt = "grounded",
        max_pixels: MaxPixelsOpt = 64_000_000,
        log_level: str = typer.Option("info", help="uvicorn log level."),
    ) -> None:
        """Run the moderator review service: the HTTP API, the workers and the review page.

        Example: veil serve --model examples/demo-model/model.json --data /srv/veil
        """
        try:
            import uvicorn

            from veil.server import ServiceSettings, create_app

            config = pipeline_config(
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
                            no_args_is_help=True, cls=LightGroup)

    @token_app.command("create")
    def token_create(
        role: str = typer.Option(..., "--role", help="submitter, moderator or admin."),
        name: str = typer.Option(..., "--name", help="Who or what uses the token (shown in the audit log)."),
        db: str | None = typer.Option(None, "--db", help=DB_HELP),
        data: Path = typer.Option(Path("veil-data"), "--data", help=DATA_HELP),
    ) -> None:
        """Create a token and print it once (last line of output)."""
        try:
            with _store(db, data) as store:
                tok, secret = store.create_token(name, role)
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
            with _store(db, data) as store:
                for t in store.tokens():
                    state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active"
                    typer.echo(f"{t.id}\t{t.role}\t{t.name}\t{state}")
        except VeilError as exc:
            fail(exc)

    app.add_typer(token_app, name="token")
