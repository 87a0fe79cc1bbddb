"""Python factories for the torch backend's `package.module:function` form."""

import importlib.util

from conftest import FIXTURES


def _builder():
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_mlp():
    """The reference fixture network, built in Python: forward(features)."""
    builder = _builder()
    shapes, seed = builder.NETWORKS["mlp_reference"]
    return builder.torch_module(builder.mlp_layers(shapes, seed))


def not_a_module():
    return {"weights": [1, 2, 3]}
