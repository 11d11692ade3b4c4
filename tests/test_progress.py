import io

from neurodivergent.training.progress import Progress


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_on_a_terminal():
    s = FakeTTY()
    p = Progress(10, desc="MLP", stream=s, min_interval=0.0)
    for _ in range(10):
        p.update(1, "loss 0.5")
    p.close()
    out = s.getvalue()
    assert "MLP" in out and "10/10" in out and "loss 0.5" in out and out.endswith("\n")


def test_progress_is_silent_when_not_a_terminal_or_disabled():
    s = io.StringIO()
    p = Progress(5, stream=s, min_interval=0.0)
    p.update(5)
    p.close()
    assert s.getvalue() == ""
    t = FakeTTY()
    q = Progress(5, stream=t, enabled=False)
    q.update(5)
    q.close()
    assert t.getvalue() == ""
