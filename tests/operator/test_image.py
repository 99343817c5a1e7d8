"""The Dockerfile builds the one image both entrypoints and the renderers rely on.

No container engine exists on the build machines, so these checks read the Dockerfile: they pin
the properties the rendered pods depend on (uid, read-only root filesystem, commands).
"""

from __future__ import annotations

from memorygraph_operator.render.image import CONFIG_DIR, RUN_AS
from operator_support import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _final_stage() -> str:
    return DOCKERFILE.rsplit("\nFROM ", 1)[1]


def test_image_is_multi_stage_and_ships_only_the_virtualenv() -> None:
    assert DOCKERFILE.count("\nFROM ") == 2
    assert "COPY --from=build /opt/memorygraph /opt/memorygraph" in _final_stage()
    assert "COPY operator" not in _final_stage()


def test_image_runs_as_the_uid_the_pods_require() -> None:
    assert f"USER {RUN_AS}:{RUN_AS}" in _final_stage()
    assert f"--uid {RUN_AS}" in _final_stage()


def test_image_never_writes_to_its_root_filesystem() -> None:
    final = _final_stage()
    assert "PYTHONDONTWRITEBYTECODE=1" in final
    assert "TMPDIR=/tmp" in final
    assert "compileall" in DOCKERFILE


def test_default_command_is_the_data_plane_with_the_rendered_config() -> None:
    assert (
        f'CMD ["memorygraph", "serve", "--config", "{CONFIG_DIR}/memorygraph.yaml"]' in DOCKERFILE
    )
