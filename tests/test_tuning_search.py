"""Searches over plain functions: grid, random (early stopping), Bayesian optimisation on Branin, NSGA-II
on ZDT1, failures, timeouts, n_jobs > 1 equal to n_jobs = 1, the results table and the builders."""
import math
import time

import numpy as np
import pytest

from neurodivergent.tuning import (AcquisitionFunction, BayesianOptimization, Direction, GridSearch,
                                   HyperparameterSpace, MultiObjectiveOptimization, RandomSearch)
from neurodivergent.tuning.benchmarks import (BRANIN_MINIMUM, branin, branin_space, hypervolume_2d, zdt1,
                                              zdt1_front, zdt1_space)
from neurodivergent.tuning.nsga2 import (crowding_distance, non_dominated_sort, pareto_mask,
                                         polynomial_mutation, sbx_crossover)


def sleepy(params):
    """Module level, so that worker processes can import it."""
    time.sleep(params["t"])
    return params["t"]


def quad(params):
    return (params["x"] - 0.3) ** 2 + (0.0 if params["c"] == "a" else 0.5) + 0.01 * params["k"]


def two_objectives(params):
    return params["x"] ** 2, (params["x"] - 2) ** 2 + (params["k"] - 4) ** 2


QUAD_SPACE = (HyperparameterSpace().add_continuous("x", -1.0, 1.0).add_categorical("c", ["a", "b"])
              .add_discrete("k", [1, 2, 3]))


def quiet(search):
    return search.with_verbose(False)


# ------------------------------------------------------------------ grid and random search
def test_grid_search_visits_every_point_once_in_order():
    s = quiet(GridSearch().with_parameter_space(QUAD_SPACE).with_resolution(5))
    res = s.optimize(quad)
    expected = list(QUAD_SPACE.grid(5))
    assert [t.params for t in res] == expected and len(res) == 5 * 2 * 3
    assert [t.number for t in res] == list(range(30))
    values = [quad(p) for p in expected]
    assert res.best_value == min(values)
    assert res.best_params == {"x": 0.5, "c": "a", "k": 1}  # grid x in {-1, -0.5, 0, 0.5, 1}
    assert s.results is res


def test_random_search_is_seeded_and_stays_in_the_space():
    base = quiet(RandomSearch().with_parameter_space(QUAD_SPACE).with_n_trials(25))
    a, b = base.with_seed(3).optimize(quad), base.with_seed(3).optimize(quad)
    c = base.with_seed(4).optimize(quad)
    assert [t.params for t in a] == [t.params for t in b] and [t.value for t in a] == [t.value for t in b]
    assert [t.params for t in a] != [t.params for t in c]
    for t in a:
        QUAD_SPACE.validate(t.params)
        assert t.value == quad(t.params) and t.status == "ok"


def test_random_search_early_stopping_stops_after_k_trials_without_improvement():
    base = quiet(RandomSearch().with_parameter_space(QUAD_SPACE).with_n_trials(200).with_seed(11))
    full = base.optimize(quad)
    k = 6
    best, since, stop = math.inf, 0, None
    for i, t in enumerate(full):  # the rule, applied by hand to the full run
        if t.value < best:
            best, since = t.value, 0
        else:
            since += 1
        if since >= k:
            stop = i
            break
    assert stop is not None and stop < 199
    early = base.with_early_stopping(k).optimize(quad)
    assert len(early) == stop + 1 and early.stopped_reason == "early_stopping"
    assert [t.params for t in early] == [t.params for t in full][: stop + 1]


def test_failed_trials_are_recorded_and_skipped():
    def flaky(p):
        if p["k"] == 2:
            raise RuntimeError("diverged")
        return float("nan") if p["k"] == 3 else quad(p)

    res = quiet(GridSearch().with_parameter_space(QUAD_SPACE).with_resolution(3)).optimize(flaky)
    by_k = {k: [t for t in res if t.params["k"] == k] for k in (1, 2, 3)}
    assert all(t.status == "failed" and "RuntimeError: diverged" in t.error and t.value is None for t in by_k[2])
    assert all(t.status == "failed" and "nan" in t.error for t in by_k[3])
    assert all(t.ok for t in by_k[1]) and res.best.params["k"] == 1
    assert len(res.completed) == 6
    with pytest.raises(RuntimeError, match="no trial completed.*boom"):
        quiet(RandomSearch().with_parameter_space(QUAD_SPACE).with_n_trials(3)).optimize(
            lambda p: (_ for _ in ()).throw(ValueError("boom"))).best
    with pytest.raises(TypeError, match="trial 0: the objective must return a number"):
        quiet(RandomSearch().with_parameter_space(QUAD_SPACE).with_n_trials(3)).optimize(lambda p: "1.0")


def test_timeout_stops_the_search_and_keeps_the_best_so_far():
    space = HyperparameterSpace().add_discrete("t", [0.02, 0.03])
    s = quiet(RandomSearch().with_parameter_space(space).with_n_trials(10_000).with_timeout(0.5))
    t0 = time.perf_counter()
    res = s.optimize(sleepy)
    assert time.perf_counter() - t0 < 0.5 + 0.5  # at most one trial runs past the limit here
    assert 3 <= len(res) < 10_000 and res.stopped_reason == "timeout"
    assert res.best_value == 0.02
    # the Bayesian loop honours it too
    space = HyperparameterSpace().add_continuous("t", 0.02, 0.03)
    bo = quiet(BayesianOptimization().with_parameter_space(space).with_n_calls(10_000).with_timeout(0.5))
    res = bo.optimize(sleepy)
    assert res.stopped_reason == "timeout" and 5 <= len(res) < 10_000


# ------------------------------------------------------------------ parallel trials
def test_n_jobs_2_gives_the_same_trials_as_n_jobs_1():
    rs = quiet(RandomSearch().with_parameter_space(branin_space()).with_n_trials(12).with_seed(5))
    bo = quiet(BayesianOptimization().with_parameter_space(branin_space()).with_n_initial_points(4)
               .with_n_calls(10).with_batch_size(3).with_seed(5))
    mo = quiet(MultiObjectiveOptimization().with_parameter_space(QUAD_SPACE.add_discrete("extra", [0, 1]))
               .add_objective("a").add_objective("b").with_population_size(6).with_generations(2).with_seed(5))
    for search, fn in ((rs, branin), (bo, branin), (mo, two_objectives)):
        serial = search.optimize(fn)
        serial = search.results
        parallel = search.with_n_jobs(2)
        parallel.optimize(fn)
        a, b = serial, parallel.results
        assert [t.params for t in a] == [t.params for t in b], search.method
        assert [t.value for t in a] == [t.value for t in b], search.method


def test_parallel_timeout_terminates_running_trials():
    space = HyperparameterSpace().add_discrete("t", [0.05, 30.0])
    s = quiet(GridSearch().with_parameter_space(space).with_n_jobs(2).with_timeout(4.0))
    t0 = time.perf_counter()
    res = s.optimize(sleepy)
    assert time.perf_counter() - t0 < 15  # the 30 s trial was cut off, not waited for
    assert res.stopped_reason == "timeout"
    assert [t.status for t in res][-1] == "timeout"
    if res.trials[0].ok:  # unless the workers took the whole budget to start on this busy machine
        assert res.best_value == 0.05


def test_unpicklable_objective_with_workers_is_refused():
    with pytest.raises(TypeError, match="picklable"):
        quiet(RandomSearch().with_parameter_space(QUAD_SPACE).with_n_jobs(2)).optimize(lambda p: 0.0)


# ------------------------------------------------------------------ Bayesian optimisation
def test_bayesian_optimisation_finds_the_branin_minimum_and_beats_random_search():
    bo_best, rs_best = [], []
    for seed in range(10):
        bo = quiet(BayesianOptimization().with_parameter_space(branin_space())
                   .with_acquisition_function(AcquisitionFunction.ExpectedImprovement)
                   .with_n_initial_points(10).with_n_calls(50).with_seed(seed))
        res = bo.optimize(branin)
        assert len(res) == 50
        bo_best.append(res.best_value)
        rs = quiet(RandomSearch().with_parameter_space(branin_space()).with_n_trials(50).with_seed(seed))
        rs_best.append(rs.optimize(branin).best_value)
    hits = sum(abs(v - BRANIN_MINIMUM) <= 0.05 for v in bo_best)
    assert hits >= 6, bo_best
    assert np.median(bo_best) < np.median(rs_best)


@pytest.mark.parametrize("acq", [AcquisitionFunction.ProbabilityOfImprovement,
                                 AcquisitionFunction.LowerConfidenceBound(kappa=2.0)])
def test_other_acquisitions_and_mixed_spaces_improve_on_the_initial_points(acq):
    bo = quiet(BayesianOptimization().with_parameter_space(QUAD_SPACE).with_acquisition_function(acq)
               .with_n_initial_points(5).with_n_calls(15).with_seed(2))
    res = bo.optimize(quad)
    assert len(res) == 15 and len({repr(sorted(t.params.items())) for t in res}) == 15  # no repeats
    assert res.best_value < min(t.value for t in res.trials[:5])
    assert res.best_params["c"] == "a" and abs(res.best_params["x"] - 0.3) < 0.3


def test_bayesian_plots(tmp_path):
    pytest.importorskip("matplotlib")
    bo = quiet(BayesianOptimization().with_parameter_space(QUAD_SPACE).with_n_initial_points(4)
               .with_n_calls(7).with_seed(0))
    with pytest.raises(RuntimeError, match="no results"):
        bo.plot_convergence(str(tmp_path / "c.png"))
    bo.optimize(quad)
    for name, fn in (("c.png", bo.plot_convergence), ("p.png", bo.plot_partial_dependence)):
        fn(str(tmp_path / name))
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ NSGA-II
def test_hypervolume_by_hand():
    assert hypervolume_2d([[1, 2], [2, 1]], (3, 3)) == 3.0  # two 2x1 rectangles overlapping in a unit square
    assert hypervolume_2d([[1, 2], [2, 1], [2.5, 2.5], [4, 0]], (3, 3)) == 3.0  # dominated / outside: no area
    assert hypervolume_2d([], (1, 1)) == 0.0


def test_nsga2_operators():
    F = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [4, 4], [2, 2], [6, 6]], dtype=float)
    rank = non_dominated_sort(F)
    assert rank.tolist() == [0, 0, 0, 1, 2, 0, 3]
    assert pareto_mask(F).tolist() == (rank == 0).tolist()
    d = crowding_distance(np.array([[0.0, 4.0], [1.0, 2.0], [3.0, 1.0], [4.0, 0.0]]))
    assert np.isinf(d[0]) and np.isinf(d[3])
    assert d[1] == pytest.approx(3 / 4 + 3 / 4) and d[2] == pytest.approx(3 / 4 + 2 / 4)
    rng = np.random.default_rng(0)
    p1, p2 = rng.random((2000, 3)), rng.random((2000, 3))
    c1, c2 = sbx_crossover(p1, p2, 15.0, 1.0, rng)
    assert np.all((c1 >= 0) & (c1 <= 1) & (c2 >= 0) & (c2 <= 1))
    assert np.all(((c1 == p1) & (c2 == p2)) | ((c1 == p2) & (c2 == p1)) | (c1 != p1))
    changed = (c1 != p1) & (c1 != p2)
    assert abs(changed.mean() - 0.5) < 0.05  # each gene recombined with probability 1/2
    same = sbx_crossover(p1, p2, 15.0, 0.0, rng)  # crossover probability 0: copies
    assert np.array_equal(same[0], p1) and np.array_equal(same[1], p2)

    def spread(eta):  # distance of the children from the nearer parent, relative to the parents' distance
        a, b = sbx_crossover(p1, p2, eta, 1.0, np.random.default_rng(1))
        near = np.minimum(np.abs(a - np.minimum(p1, p2)), np.abs(a - np.maximum(p1, p2)))
        gap = np.abs(p1 - p2)
        return np.median((near / gap)[(a != p1) & (a != p2)])

    assert spread(100.0) < spread(2.0) / 3  # a larger distribution index keeps children near the parents
    m = polynomial_mutation(np.full((5000, 2), 0.5), 20.0, 0.5, rng)
    changed = m != 0.5
    assert abs(changed.mean() - 0.5) < 0.03 and np.all((m >= 0) & (m <= 1))
    assert abs(np.mean(m[changed] - 0.5)) < 0.01  # symmetric around the parent


def test_nsga2_reaches_95_percent_of_the_zdt1_hypervolume():
    mo = quiet(MultiObjectiveOptimization().with_parameter_space(zdt1_space(30))
               .add_objective("f1").add_objective("f2").with_population_size(50).with_generations(100).with_seed(0))
    front = mo.optimize(zdt1)
    ref = (1.1, 1.1)
    true = hypervolume_2d(zdt1_front(100001), ref)
    assert true == pytest.approx(0.1 + 2 / 3 + 0.11, abs=1e-5)  # int_0^1 (1.1 - (1 - sqrt f)) df + 0.1 * 1.1
    hv = hypervolume_2d(front.values(), ref)
    assert hv >= 0.95 * true, hv / true
    assert len(mo.results) <= 50 * 101
    assert pareto_mask(front.values()).all()


def test_directions_weights_and_the_compromise():
    mo = quiet(MultiObjectiveOptimization().with_parameter_space(HyperparameterSpace().add_continuous("x", 0.0, 1.0))
               .add_objective("cost", weight=0.9, direction=Direction.Minimize)
               .add_objective("gain", weight=0.1, direction="maximize")
               .with_population_size(12).with_generations(8).with_seed(1))
    front = mo.optimize(lambda p: (p["x"], 2 * p["x"]))  # a larger gain costs more: all points trade off
    v = front.values()
    assert len(front) > 5 and np.all(np.diff(v[:, 0]) > 0) and np.all(np.diff(v[:, 1]) > 0)
    assert front.best().value == tuple(v[0])  # cost weighs most: the cheapest
    assert front.best([0.0, 1.0]).value == tuple(v[-1])
    with pytest.raises(ValueError, match="2 entries"):
        front.best([1.0])
    with pytest.raises(ValueError, match="single best"):
        mo.results.best


# ------------------------------------------------------------------ results and builders
def test_results_table(tmp_path):
    res = quiet(GridSearch().with_parameter_space(QUAD_SPACE).with_resolution(2)).optimize(quad)
    text = res.to_csv()
    lines = text.strip().split("\n")
    assert lines[0] == "trial,x,c,k,value,status,duration_s,error" and len(lines) == 13
    res.to_csv(str(tmp_path / "r.csv"))
    assert (tmp_path / "r.csv").read_text() == text
    pd = pytest.importorskip("pandas")
    df = res.to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df["value"]) == [t.value for t in res]
    assert res.best_so_far() == list(np.minimum.accumulate([t.value for t in res]))
    assert "best" in repr(res)


def test_builders_validate_and_copy():
    s = RandomSearch()
    t = s.with_n_trials(5)
    assert s.n_trials == 100 and t.n_trials == 5
    for call, match in ((lambda: s.with_n_jobs(0), "n_jobs"), (lambda: s.with_timeout(-1), "timeout"),
                        (lambda: s.with_scoring_metric("r2"), "scoring_metric"), (lambda: s.with_cv_folds(0), "cv_folds"),
                        (lambda: s.with_parameter_space({"x": [1]}), "HyperparameterSpace"),
                        (lambda: s.with_early_stopping(0), "early_stopping"),
                        (lambda: BayesianOptimization().with_alpha(-1), "alpha"),
                        (lambda: BayesianOptimization().with_gaussian_process_kernel("cubic"), "kernel"),
                        (lambda: MultiObjectiveOptimization().add_objective("a", direction="up"), "direction"),
                        (lambda: MultiObjectiveOptimization().add_objective("a").add_objective("a"), "twice"),
                        (lambda: s.with_model_type("prophet"), "unknown model")):
        with pytest.raises((ValueError, TypeError), match=match):
            call()
    import datetime

    from neurodivergent import Metric

    assert s.with_timeout(datetime.timedelta(hours=6)).timeout == 6 * 3600
    assert s.with_scoring_metric(Metric.RMSE).scoring_metric == "rmse"
    with pytest.raises(ValueError, match="parameter space is empty"):
        s.optimize(quad)
    with pytest.raises(ValueError, match="add at least one objective"):
        MultiObjectiveOptimization().with_parameter_space(QUAD_SPACE).optimize(two_objectives)


def test_bayesian_optimisation_stops_when_a_finite_space_is_exhausted():
    space = HyperparameterSpace().add_discrete("k", [1, 2, 3]).add_categorical("c", ["a", "b"])
    bo = quiet(BayesianOptimization().with_parameter_space(space).with_n_initial_points(4).with_n_calls(20))
    res = bo.optimize(lambda p: p["k"] + (p["c"] == "b"))
    assert len(res) == 6 and len({(t.params["k"], t.params["c"]) for t in res}) == 6
    assert res.stopped_reason == "space_exhausted" and res.best_params == {"k": 1, "c": "a"}


def test_an_objective_the_workers_cannot_import_fails_its_trials_instead_of_hanging():
    import sys
    import types

    ghost = types.ModuleType("ghost_objective_module")  # exists in this process only
    exec("def g(p):\n    return p['x']\n", ghost.__dict__)
    sys.modules["ghost_objective_module"] = ghost
    try:
        s = quiet(RandomSearch().with_parameter_space(QUAD_SPACE).with_n_trials(3).with_n_jobs(2).with_timeout(60))
        res = s.optimize(ghost.g)
    finally:
        del sys.modules["ghost_objective_module"]
    assert [t.status for t in res] == ["failed"] * 3
    assert "could not load the objective" in res[0].error and "ghost_objective_module" in res[0].error


def test_progress_is_drawn_on_a_terminal_only(monkeypatch):
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    for verbose, tty in ((True, True), (True, False), (False, True)):
        stream = Tty() if tty else io.StringIO()
        monkeypatch.setattr("sys.stderr", stream)
        RandomSearch().with_parameter_space(QUAD_SPACE).with_n_trials(5).with_verbose(verbose).optimize(quad)
        text = stream.getvalue()
        if verbose and tty:
            assert "RandomSearch" in text and "5/5" in text and "best" in text
        else:
            assert text == ""


def test_guide_module_path_optimization_reexports_tuning():
    import neurodivergent.optimization as opt
    import neurodivergent.tuning as tuning

    # the guide: use neuro_divergent::optimization::{GridSearch, HyperparameterSpace, RandomSearch, ...}
    for name in ["GridSearch", "HyperparameterSpace", "RandomSearch", "BayesianOptimization",
                 "MultiObjectiveOptimization"]:
        assert getattr(opt, name) is getattr(tuning, name)
    assert set(opt.__all__) == set(tuning.__all__)
