"""Ray stays optional: the add-on never imports it, a missing Ray is a clear error,
and --ray's options are checked before anything starts. No Ray is started here."""
import pytest

from fresh_python import run_python
from orangecontrib.deepimage import cli


def test_the_add_on_and_its_cli_do_not_import_ray():
    proc = run_python(
        "import sys\n"
        "import orangecontrib.deepimage, orangecontrib.deepimage.cluster\n"
        "from orangecontrib.deepimage.cli import build_parser\n"
        "build_parser().parse_args(['embed', 'x', '--ray', 'local'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'pyarrow')))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_without_ray_the_cli_says_how_to_install_it(photo_dir):
    proc = run_python(
        "import sys\n"
        "sys.modules['ray'] = None  # as if it were not installed\n"
        "from orangecontrib.deepimage.cli import main\n"
        f"sys.exit(main(['embed', {str(photo_dir)!r}, '--ray', 'local']))")
    assert proc.returncode == 2, proc.stderr
    assert 'pip install "Orange3-DeepImage[cluster]"' in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("args, message", [
    (["--shards", "10", "-o", "out"], "--shards and --actors go with --ray"),
    (["--actors", "2"], "--shards and --actors go with --ray"),
    (["--ray", "local", "--server", "http://127.0.0.1:1"], "choose --server or --ray"),
    (["--ray", "local", "--shards"], "give it with -o DIR"),
    (["--ray", "local", "--shards", "-o", "out.csv"], "give -o a folder, not a file"),
    (["--ray", "local", "--shards", "0", "-o", "out"], "--shards must be at least 1"),
    (["--ray", "local", "--actors", "0"], "--actors must be at least 1"),
    (["--ray", "local", "-o", "out"], "the output must end in .csv, .tab, .npy"),
])
def test_wrong_ray_options_are_refused_before_anything_runs(photo_dir, capsys, args,
                                                             message):
    assert cli.main(["embed", str(photo_dir), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepimage: error: ") and message in err


def test_a_shard_folder_is_checked_before_ray_starts(tmp_path):
    """ShardPlan needs no Ray: a foreign manifest or stray shards are refused."""
    from orangecontrib.deepimage.cluster.shards import ShardMismatch, ShardPlan
    out = tmp_path / "out"
    plan = ShardPlan.open(out, ["a.jpg", "b.jpg", "c.jpg"], 2, {"model": "squeezenet"})
    assert (plan.count, plan.pending(), list(plan.rows(1))) == (2, [0, 1], [2])
    with pytest.raises(ShardMismatch, match="its model differs"):
        ShardPlan.open(out, ["a.jpg", "b.jpg", "c.jpg"], 2, {"model": "vgg16"})
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(ShardMismatch, match="not a manifest this program wrote"):
        ShardPlan.open(out, ["a.jpg"], 2, {"model": "squeezenet"})
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "shard-00000.parquet").write_bytes(b"")
    with pytest.raises(ShardMismatch, match="no manifest.json"):
        ShardPlan.open(stray, ["a.jpg"], 2, {"model": "squeezenet"})
