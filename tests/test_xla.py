"""The XLA:CPU flag jcnn's command adds is gated on the measured jaxlib versions."""

from importlib import metadata

from jcnn import _xla


def test_flag_added_only_for_measured_jaxlib(monkeypatch):
    monkeypatch.delenv("JCNN_KEEP_XLA_FLAGS", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    monkeypatch.setattr(metadata, "version", lambda name: "0.10.2")
    assert _xla.cpu_flags_to_add() == [_xla.YNN_FLAG]
    _xla.configure()
    import os

    assert os.environ["XLA_FLAGS"].split() == [
        "--xla_force_host_platform_device_count=2",
        _xla.YNN_FLAG,
    ]
    assert _xla.cpu_flags_to_add() == []  # already there: never added twice
    # An unmeasured jaxlib may not know the flag, and XLA aborts on unknown flags.
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setattr(metadata, "version", lambda name: "0.11.0")
    assert _xla.cpu_flags_to_add() == []
    monkeypatch.setattr(metadata, "version", lambda name: "0.10.2")
    monkeypatch.setenv("JCNN_KEEP_XLA_FLAGS", "1")
    assert _xla.cpu_flags_to_add() == []
