"""One version: pyproject's, reported by both packages, the chart's appVersion, the default image.

The chart runs the image tagged with its appVersion, and the operator gives graphs without
``spec.image`` its own default image: were they to differ, an upgrade would run one release's
operator against another release's data plane.
"""

from __future__ import annotations

import tomllib

import memorygraph
import memorygraph_operator
import yaml
from memorygraph_operator.render.image import DEFAULT_IMAGE, IMAGE_REPOSITORY
from operator_support import ROOT

REINSTALL = "the installed metadata is stale: reinstall (make install) after changing the version"


def _pyproject_version() -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert isinstance(version, str)
    return version


def test_both_packages_report_pyprojects_version() -> None:
    version = _pyproject_version()
    assert memorygraph.__version__ == version, REINSTALL
    assert memorygraph_operator.__version__ == version, REINSTALL


def test_every_chart_ships_the_same_app_version() -> None:
    charts = sorted((ROOT / "charts").glob("*/Chart.yaml"))
    assert charts
    for chart in charts:
        assert yaml.safe_load(chart.read_text())["appVersion"] == _pyproject_version(), chart


def test_default_data_plane_image_is_the_charts_image_at_that_version() -> None:
    values = yaml.safe_load((ROOT / "charts/memorygraph-operator/values.yaml").read_text())
    assert values["image"]["repository"] == IMAGE_REPOSITORY
    assert f"{IMAGE_REPOSITORY}:{_pyproject_version()}" == DEFAULT_IMAGE
