"""Shared helpers for the AMI tests: where the recorded traces live, and how to load them."""

from __future__ import annotations

from pathlib import Path

from pbx.ami.trace import Trace, load_trace

# Recorded Asterisk 22 traffic, copied into the repo so a lone clone runs the suite.
AMI_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"


def ami_fixtures() -> Path:
    """The fixture folder; a missing folder is an error, never a reason to skip."""
    if not AMI_FIXTURES.is_dir() or not any(AMI_FIXTURES.glob("*.log")):
        raise FileNotFoundError(f"AMI trace fixtures not found in {AMI_FIXTURES}")
    return AMI_FIXTURES


def trace_names() -> list[str]:
    return sorted(path.stem for path in ami_fixtures().glob("*.log"))


def load(name: str) -> Trace:
    return load_trace(ami_fixtures() / f"{name}.log")
