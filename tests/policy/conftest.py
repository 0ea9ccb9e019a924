import pytest
import torch

from worldsmith.policy.model import TinyModelConfig, build_tiny_model
from worldsmith.policy.tokenizer import build_char_tokenizer


@pytest.fixture(autouse=True)
def one_thread():
    """The test machine's cores are shared; a single torch thread is both faster and steadier."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tok():
    return build_char_tokenizer()


@pytest.fixture
def tiny(tok):
    return build_tiny_model(tok, TinyModelConfig(), seed=0)
