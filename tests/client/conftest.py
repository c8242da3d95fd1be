"""Fixtures for the remote client: a real network, stand-in servers on 127.0.0.1."""
import pytest

from orangecontrib.deepimage.core import Embedder, EmbeddingCache, find_images

from client_standin import Knobs, RealServer, StandInServer


@pytest.fixture(scope="session")
def local_embedder():
    """Real SqueezeNet weights (so vectors have an identity and are cached), no cache."""
    return Embedder("squeezenet", backend="torch", cache=False)


@pytest.fixture
def standin(local_embedder):
    """Start a stand-in server with the given knobs; stopped after the test."""
    servers = []

    def start(**knobs) -> StandInServer:
        server = StandInServer(local_embedder, Knobs(**knobs)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def cache(tmp_path):
    with EmbeddingCache(tmp_path / "cache" / "embeddings.sqlite") as c:
        yield c


@pytest.fixture
def sources(photo_dir):
    """Nine inputs: six good JPEGs and three bad files, in find_images order."""
    return find_images(photo_dir)


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    """The real server (`deepimage serve`, SqueezeNet with its real weights), with a token."""
    folder = tmp_path_factory.mktemp("serve")
    (folder / "tokens.txt").write_text("client-test-token-0123456789\n")
    server = RealServer(str(folder), "--token-file", str(folder / "tokens.txt")).wait_ready()
    server.token = "client-test-token-0123456789"
    server.token_file = str(folder / "tokens.txt")
    yield server
    server.stop()
