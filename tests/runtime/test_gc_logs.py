"""`ratchet gc`'s logs part: a stack process log over `retention.log_max_mb` keeps its newest
half from a line start, in place, so the process appending to it goes on writing."""

from __future__ import annotations

from ratchet.runtime import gc
from ratchet.runtime.context import load_context
from tests.conftest import CONFIG_FILES


def test_a_long_log_keeps_its_newest_lines_and_its_writer(home):
    ctx = load_context(CONFIG_FILES, home=str(home), overrides={"retention": {"log_max_mb": 0.01}})  # 10 KiB
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    short = logs / "inference.log"
    short.write_text("started\n")
    long = logs / "runner.log"
    writer = open(long, "a")  # noqa: SIM115 - a process's handle, held across the trim
    for i in range(2000):
        writer.write(f"line {i:05d} of the runner\n")
    writer.flush()
    size = long.stat().st_size

    dry = gc.trim_logs(ctx, dry_run=True)
    assert dry.items == ["runner.log"] and long.stat().st_size == size
    done = gc.trim_logs(ctx)
    assert done.items == ["runner.log"] and done.bytes == dry.bytes > size // 2
    text = long.read_text()
    assert len(text) <= int(0.01 * 2**20) // 2 and text.startswith("line ") and text.endswith("line 01999 of the runner\n")
    assert short.read_text() == "started\n"
    writer.write("after the trim\n")  # append mode: at the new end, no hole of zeros before it
    writer.close()
    assert long.read_text() == text + "after the trim\n"
    assert gc.trim_logs(ctx).items == []
