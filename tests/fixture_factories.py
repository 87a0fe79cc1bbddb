"""Python factories for the torch backend's `package.module:function` form."""


from conftest import FIXTURES, load_script


def _builder():
    return load_script(FIXTURES / "make_fixtures.py")


def reference_mlp():
    """The reference fixture network, built in Python: forward(features)."""
    builder = _builder()
    shapes, seed = builder.NETWORKS["mlp_reference"]
    return builder.torch_module(builder.mlp_layers(shapes, seed))


def not_a_module():
    return {"weights": [1, 2, 3]}
