"""Settings: CLI > environment (HALO_*) > halo.toml > defaults, implemented once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ByteSize, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

Backend = Literal["auto", "cpu", "vulkan", "rocm"]
LogLevel = Literal["debug", "info", "warning", "error"]


class Settings(BaseSettings):
    """Everything halo can be told. Every field has a default and a description."""

    model_config = SettingsConfigDict(env_prefix="HALO_", extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Address to bind (loopback by default).")
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0 picks a free one).")
    models_dir: Path = Field(Path("models"), description="Directory scanned for *.gguf files.")
    models_file: Path | None = Field(
        None, description="Per-model settings (TOML); default <models_dir>/models.toml."
    )
    memory_budget: ByteSize | None = Field(
        None, description="Memory the models may use, e.g. '96GiB'; default from the probe."
    )
    backend: Backend = Field("auto", description="llama.cpp backend: auto, cpu, vulkan, rocm.")
    cpu_variant: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.]+$",
        description="llama.cpp CPU backend variant to use (e.g. 'haswell'); default: the "
        "best-scoring one this CPU runs (AMX only after an execution check).",
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Accepted API keys (comma-separated in HALO_API_KEYS); empty = no auth.",
    )
    metrics_require_key: bool = Field(False, description="Require the API key on /metrics.")
    insecure_no_auth: bool = Field(
        False, description="Allow binding a non-loopback address without an API key."
    )
    log_level: LogLevel = Field("info", description="Log level (logs are JSON lines on stderr).")
    default_n_ctx: int = Field(4096, ge=64, description="Context per request slot.")
    default_parallel: int = Field(4, ge=1, le=64, description="Sequence slots per model.")
    default_ttl: float = Field(300.0, ge=0, description="Idle seconds before unloading a model.")
    preload: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Model ids to load at startup (comma-separated)."
    )
    nodes: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Other boxes running `halo node`, as host:port (comma-separated in "
        "HALO_NODES); models opt in with `nodes` in models.toml.",
    )
    node_retry_seconds: float = Field(
        10.0, gt=0, description="How often a node that did not answer at startup is asked "
        "again (it gets its budget once it answers).")
    max_body_bytes: int = Field(4 << 20, ge=1024, description="Largest request body accepted.")
    max_waiting: int = Field(64, ge=0, description="Requests allowed to wait for a model.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads per worker (default all).")
    stream_commit_seconds: float = Field(
        5.0, ge=0, description="How long a stream waits for its first token before sending "
        "headers (errors until then are plain HTTP errors; after, keep-alives flow)."
    )
    sse_ping_seconds: float = Field(15.0, gt=0, description="Keep-alive comment interval.")
    catalog_refresh_seconds: float = Field(
        5.0, ge=0, description="How often the models dir is checked for added or removed models "
        "(a stat of each file; 0 = only on GET /v1/models and after pulls and removals)."
    )

    @field_validator("nodes")
    @classmethod
    def _node_addresses(cls, value: list[str]) -> list[str]:
        from app.hardware.nodes import parse_address

        for address in value:
            parse_address(address)  # NodeAddressError is a ValueError: a validation error
        if len(set(value)) != len(value):
            raise ValueError("nodes lists an address twice")
        return value

    @field_validator("api_keys", "preload", "nodes", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def models_file_path(self) -> Path:
        return self.models_file or self.models_dir / "models.toml"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Settings(...) built directly (tests, embedding) use only what they are given;
        # load_settings() adds the environment and the TOML file.
        return (init_settings,)


def load_settings(
    cli: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings with the precedence CLI > env > TOML file > defaults.

    ``config_file`` defaults to $HALO_CONFIG, else ./halo.toml when it exists.
    ``env`` defaults to os.environ (tests pass their own).
    """
    environ = os.environ if env is None else env
    path = config_file or (Path(environ["HALO_CONFIG"]) if "HALO_CONFIG" in environ else None)
    if path is None and Path("halo.toml").is_file():
        path = Path("halo.toml")
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, _EnvSource(settings_cls,
                                                                                   environ)]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            return tuple(sources)

    values = {k: v for k, v in (cli or {}).items() if v is not None}
    return _Loaded(**values)


class _EnvSource(PydanticBaseSettingsSource):
    """HALO_* variables from an explicit mapping (so tests need not touch os.environ)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = environ

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._environ.get(f"HALO_{field_name.upper()}"), field_name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            value, _, _ = self.get_field_value(None, name)
            if value is not None:
                out[name] = value
        return out
