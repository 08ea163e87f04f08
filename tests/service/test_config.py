from pathlib import Path

import pytest

from service.config import ConfigError, load_settings, read_settings


def test_defaults_are_the_embedded_sqlite_store() -> None:
    settings = load_settings({})
    assert settings.database_url == "sqlite:///var/fvlab.db"
    assert settings.data_dir == Path("var")
    assert settings.backend == "sqlite"
    assert settings.secret_key is None and settings.weights_dir is None


def test_postgres_url_is_accepted() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1/test"
    assert load_settings({"FVLAB_DATABASE_URL": url}).backend == "postgresql"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FVLAB_DATABASE_URL": "not a url"}, "not a database URL"),
        ({"FVLAB_DATABASE_URL": "mysql://root@localhost/x"}, "supports sqlite, postgresql"),
        ({"FVLAB_DATABASE_URL": "postgresql+psycopg2://u@h/d"}, "psycopg driver"),
        ({"FVLAB_SECRET_KEY": "short"}, "at least 16"),
        ({"FVLAB_WEIGHTS_DIR": "/no/such/folder"}, "not an existing directory"),
    ],
)
def test_invalid_settings_fail_with_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(env)
    assert "\n" not in str(info.value)


def test_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        load_settings({"FVLAB_DATA_DIR": str(blocker)})


def test_proxy_hops_default_to_none_trusted() -> None:
    assert load_settings({}).proxy_hops == 0
    assert load_settings({"FVLAB_PROXY_HOPS": "1"}).proxy_hops == 1


@pytest.mark.parametrize("raw", ["-1", "one", "²", "1.5", "6"])
def test_bad_proxy_hops_fail_with_one_line_when_read(raw: str) -> None:
    settings = read_settings({"FVLAB_PROXY_HOPS": raw})  # other settings still usable
    assert settings.database_url == "sqlite:///var/fvlab.db"
    with pytest.raises(ConfigError, match="FVLAB_PROXY_HOPS must be a whole number") as info:
        _ = settings.proxy_hops
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="FVLAB_PROXY_HOPS"):
        load_settings({"FVLAB_PROXY_HOPS": raw})
