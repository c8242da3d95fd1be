"""Settings, start-up checks (tokens, models, weights files) and fine-tuned ONNX models."""
from __future__ import annotations

import numpy as np
import pytest

from orangecontrib.deepimage.cli import main
from orangecontrib.deepimage.core.images import decode_image
from orangecontrib.deepimage.core.onnx import OnnxRunner
from orangecontrib.deepimage.server.app import create_app
from orangecontrib.deepimage.server.config import ConfigError, Settings, is_loopback

from server_helpers import TOKEN, jpeg


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True),
                                            ("::1", True), ("[::1]", True),
                                            ("0.0.0.0", False), ("::", False),
                                            ("192.168.1.5", False), ("gpu.lab.org", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.7"])
def test_refuses_a_public_address_without_tokens(host):
    with pytest.raises(ConfigError, match="without access tokens"):
        create_app(Settings(host=host))
    create_app(Settings(host=host, tokens=[TOKEN]))  # with a token it starts


def test_cli_refuses_a_public_address_without_tokens(capsys):
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "Refusing to listen on 0.0.0.0 without access tokens" in err
    assert "--token-file" in err


def test_token_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# comment\n\n  {TOKEN}  \nsecond-token-abcdefghijklmnop\n")
    assert Settings(token_file=path).load_tokens() == [TOKEN, "second-token-abcdefghijklmnop"]
    path.write_text("short\n")
    with pytest.raises(ConfigError, match="shorter than 16"):
        Settings(token_file=path).load_tokens()
    with pytest.raises(ConfigError, match="Cannot read the token file"):
        Settings(token_file=tmp_path / "missing").load_tokens()


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEEPIMAGE_SERVER_MODELS", "squeezenet, VGG16")
    monkeypatch.setenv("DEEPIMAGE_SERVER_TOKENS", f"{TOKEN},another-token-0123456789")
    monkeypatch.setenv("DEEPIMAGE_SERVER_MAX_BATCH", "8")
    monkeypatch.setenv("DEEPIMAGE_SERVER_WEIGHTS", "mine=/srv/mine.onnx")
    settings = Settings()
    assert settings.models == ["squeezenet", "vgg16"]
    assert settings.load_tokens() == [TOKEN, "another-token-0123456789"]
    assert settings.max_batch == 8
    assert settings.weights_files() == {"mine": __import__("pathlib").Path("/srv/mine.onnx")}
    assert Settings(max_batch=2).max_batch == 2  # given values win over the environment
    assert TOKEN not in repr(settings)


def test_max_batch_defaults_by_device_and_a_given_one_wins():
    assert Settings().max_batch is None and Settings().max_delay_ms == 0
    assert Settings().batch_limit("cpu") == 4
    assert Settings().batch_limit("cuda") == Settings().batch_limit("cuda:1") == 64
    assert Settings(max_batch=64).batch_limit("cpu") == 64
    assert Settings(max_batch=2).batch_limit("cuda") == 2


def test_missing_weights_are_named_before_starting(tmp_path, capsys):
    with pytest.raises(ConfigError, match="vgg16-397923af.pth"):
        create_app(Settings(models=["vgg16"]))
    missing = tmp_path / "nothere.pth"
    with pytest.raises(ConfigError, match="nothere.pth does not exist"):
        create_app(Settings(weights=[f"vgg16={missing}"]))
    with pytest.raises(ConfigError, match="unknown model 'resnet'"):
        create_app(Settings(models=["resnet"]))
    with pytest.raises(ConfigError, match="NAME=FILE"):
        create_app(Settings(weights=["just-a-file.onnx"]))
    assert main(["serve", "--models", "inception-v3", "--port", "1"]) == 2
    assert "inception_v3_google-0cc3c7bd.pth" in capsys.readouterr().err


def test_a_fine_tuned_onnx_model_is_served_by_name(make_client, onnx_model):
    client = make_client(models=["squeezenet"], weights=[f"mine={onnx_model}"])
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {"squeezenet", "mine"}
    mine = models["mine"]
    assert mine["fine_tuned"] is True and mine["input_size"] == 96 and mine["dim"] == 512
    assert mine["weights_id"].startswith("onnx-")
    data = jpeg(7, (200, 150))
    response = client.post("/image/mine", content=data)
    assert response.status_code == 200
    expected = OnnxRunner(onnx_model)(decode_image(data, (96, 96))[None])[0]
    np.testing.assert_allclose(response.json()["embedding"], expected, rtol=1e-4, atol=1e-4)
    batch = client.post("/v1/embed/mine", files=[("images", data)]).json()
    assert batch["input_size"] == 96 and batch["weights_id"] == mine["weights_id"]


def test_an_onnx_file_without_metadata_is_refused(tmp_path):
    from orangecontrib.deepimage.core.models import get_spec
    from orangecontrib.deepimage.core.networks import EmbeddingNet, build_backbone
    from orangecontrib.deepimage.core.onnx import export_onnx
    spec = get_spec("squeezenet")
    path = export_onnx(EmbeddingNet(spec, build_backbone(spec)), spec, tmp_path / "bare.onnx",
                       image_size=64)
    with pytest.raises(ConfigError, match="deepimage.base_model"):
        create_app(Settings(weights=[f"bare={path}"]))
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ConfigError, match="not a readable ONNX file"):
        create_app(Settings(weights=[f"junk={tmp_path / 'junk.onnx'}"]))


def test_random_weights_are_marked_and_never_share_a_cache_id(make_client):
    client = make_client(models=["vgg16"], random_weights=True, max_batch=2)
    (model,) = client.get("/v1/models").json()["models"]
    assert "random weights" in model["title"] and model["weights_id"].startswith("random-")
    assert model["dim"] == 4096 and model["input_size"] == 224
    response = client.post("/image/vgg16", content=jpeg(8))
    assert response.status_code == 200 and len(response.json()["embedding"]) == 4096


def test_the_cli_parser_does_not_import_the_server_stack():
    from fresh_python import run_python
    code = ("import sys\nfrom orangecontrib.deepimage.cli import build_parser, main\n"
            "main(['models'])\n"
            "print('pydantic_settings' in sys.modules)\n"  # other commands never pay for it
            "args = build_parser().parse_args(['serve', '--port', '9'])\n"
            "print(args.port, sorted(m for m in ('fastapi', 'uvicorn', 'starlette') "
            "if m in sys.modules))")
    proc = run_python(code, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[-3:-1] == ["False", "9 []"]


def test_serve_options_are_the_settings_fields():
    """One list: every Settings field but `tokens` is an option, and what the options
    give is what Settings gets."""
    from orangecontrib.deepimage.cli import build_parser
    from orangecontrib.deepimage.server.config import Settings as S
    parser = build_parser()
    serve = next(action for action in parser._subparsers._group_actions[0].choices.values()
                 if action.prog.endswith("serve"))
    options = {action.dest for action in serve._actions if action.option_strings} - {"help"}
    assert options == set(S.model_fields) - {"tokens"}
    args = parser.parse_args(["serve", "--no-batching", "--max-batch", "8", "--crop",
                              "--allowed-hosts", "a.example,b.example", "--keep-alive-s",
                              "2.5", "--weights", "x=1.onnx", "--weights", "y=2.onnx",
                              "--max-connections", "9", "--device", "cpu"])
    given = {name: value for name, value in vars(args).items() if name in S.model_fields}
    settings = S(**given)
    assert (settings.batching, settings.max_batch, settings.crop) == (False, 8, True)
    assert settings.allowed_hosts == ["a.example", "b.example"]
    assert (settings.keep_alive_s, settings.max_connections) == (2.5, 9)
    assert settings.weights == ["x=1.onnx", "y=2.onnx"] and settings.device == "cpu"
    assert set(given) == {"batching", "max_batch", "crop", "allowed_hosts", "keep_alive_s",
                          "weights", "max_connections", "device"}  # the rest: env, defaults


def test_limits_that_could_never_be_met_are_refused():
    with pytest.raises(ConfigError, match="--max-queued-images 8 is below "
                                          "--max-images-per-request 64"):
        create_app(Settings(max_queued_images=8))
    with pytest.raises(ConfigError, match="--max-buffered-bytes 2048 is below"):
        create_app(Settings(max_buffered_bytes=2048))
    with pytest.raises(ConfigError, match="printable ASCII"):
        create_app(Settings(tokens=["with space 0123456789abcdef"]))
