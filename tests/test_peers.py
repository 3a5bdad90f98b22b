"""The peer libraries' builds of the CSNN (``benchmarks/peers.py``), for each one that is installed.

One layer of each peer's neuron is driven with the same input current as ours. snnTorch's tutorial
neuron is ours: the same spikes and membrane. SpikingJelly's and Norse's subtract the threshold
within the step that fires, so the subtraction decays before the next input; no setting of theirs
gives our dynamics. For them the tests pin what the peers' documentation in ``peers.py`` says:
exactly the spikes of ``lif_reset_decayed``, the same spikes as ours up to each neuron's first
spike, and a known input on which the two neurons part.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from snn_lib.config import ModelConfig
from snn_lib.model import CSNN
from snn_lib.neurons import lif_sequence

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import peers  # noqa: E402
import train_speed  # noqa: E402

CFG = ModelConfig()
BETA, THETA = CFG.beta, CFG.threshold
MODULES = {"snntorch-tutorial": "snntorch", "spikingjelly": "spikingjelly.activation_based", "norse": "norse.torch"}


def current(T: int = 40, n: int = 300, seed: int = 0) -> torch.Tensor:
    """Input currents ``[T, n]`` in float64 (no ties at the threshold), many neurons firing repeatedly."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(T, n, generator=g, dtype=torch.float64) * 1.6 - 0.2


def up_to_first_spike(spk: torch.Tensor) -> torch.Tensor:
    """Mask ``[T, n]``: every step of a neuron up to and including its first spike (all steps if none)."""
    return torch.cumsum(spk, 0) - spk == 0                         # no spike at an earlier step


@pytest.fixture(params=list(MODULES))
def peer(request):
    pytest.importorskip(MODULES[request.param])
    return request.param


def test_reset_decayed_reference_on_a_hand_computed_input():
    # beta 0.5, theta 1: I = 1.5 fires; ours then U = 0.75 + 0.9 - 1 = 0.65 (silent),
    # the decayed reset H = 0.5 * (1.5 - 1) + 0.9 = 1.15 (fires); then 0.325 vs 0.075
    cur = torch.tensor([[1.5], [0.9], [0.0]], dtype=torch.float64)
    spk, v = peers.lif_reset_decayed(cur, BETA, THETA)
    assert spk.flatten().tolist() == [1.0, 1.0, 0.0]
    torch.testing.assert_close(v.flatten(), torch.tensor([0.5, 0.15, 0.075], dtype=torch.float64))
    ours, mem = lif_sequence(cur, BETA, THETA)
    assert ours.flatten().tolist() == [1.0, 0.0, 0.0]
    torch.testing.assert_close(mem.flatten(), torch.tensor([1.5, 0.65, 0.325], dtype=torch.float64))


def test_neuron_matches_ours_as_documented(peer):
    cur = current()
    spk, mem = peers.neuron(peer, CFG)(cur)
    ours_spk, ours_mem = lif_sequence(cur, BETA, THETA)
    assert spk.shape == mem.shape == cur.shape
    assert 0.2 < ours_spk.mean() < 0.8                             # the input exercises the reset
    if peer == "snntorch-tutorial":                                 # the same neuron: equal everywhere
        assert torch.equal(spk, ours_spk)
        torch.testing.assert_close(mem, ours_mem)
        return
    # the reset decays: exactly the spikes of lif_reset_decayed, membrane after the reset
    ref_spk, ref_v = peers.lif_reset_decayed(cur, BETA, THETA)
    assert torch.equal(spk, ref_spk)
    torch.testing.assert_close(mem, ref_v)
    # ours up to and including each neuron's first spike; afterwards they part
    first = up_to_first_spike(ours_spk)
    assert torch.equal(spk[first], ours_spk[first])
    assert (spk[~first] != ours_spk[~first]).any()


def test_neuron_parts_from_ours_on_the_hand_computed_input(peer):
    if peer == "snntorch-tutorial":
        pytest.skip("snnTorch's neuron is ours")
    spk, _ = peers.neuron(peer, CFG)(torch.tensor([[1.5], [0.9], [0.0]], dtype=torch.float64))
    assert spk.flatten().tolist() == [1.0, 1.0, 0.0]               # ours: [1, 0, 0]


def test_peer_model_takes_the_csnn_weights(peer):
    torch.manual_seed(0)
    csnn = CSNN(ModelConfig(impl="reference"))
    run = next(r for r in peers.runs(torch.device("cpu"))[0] if r.peer.key == peer)
    model = peers.build(run, csnn.state_dict(), torch.device("cpu"))
    names = dict(model.named_parameters())
    assert set(names) == {k for k, _ in csnn.named_parameters()}
    for k, p in csnn.named_parameters():
        assert torch.equal(names[k], p)
    frames = (torch.rand(6, 2, 2, 34, 34) < 0.2).float() * 3
    spk, mem = model(frames)
    assert spk.shape == mem.shape == (6, 2, 10)
    spk2, _ = model(frames)                                        # state does not leak between calls
    assert torch.equal(spk, spk2)
    # the whole network: CSNN's layers with the peer's documented neuron in each LIF layer (float64
    # where the library allows: snnTorch's spikes are float32 whatever the input)
    if peer == "snntorch-tutorial":
        lif, dtype = lif_sequence, torch.float32
    else:
        lif, dtype = peers.lif_reset_decayed, torch.float64
    model.to(dtype)
    spk, mem = model(frames.to(dtype))
    ref_spk, ref_mem, hidden = network(csnn.to(dtype), frames.to(dtype), lif)
    assert hidden.mean() > 0.01                                    # the hidden layers fire: resets matter
    assert torch.equal(spk, ref_spk)
    torch.testing.assert_close(mem, ref_mem)


def network(csnn: CSNN, frames: torch.Tensor, lif) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CSNN's layers with ``lif(cur [T, ...]) -> (spk, mem)`` as every LIF layer: ``(spk, mem, layer-1 spikes)``."""
    T, B = frames.shape[:2]
    cur = torch.nn.functional.max_pool2d(csnn.conv1(frames.flatten(0, 1)), 2)
    spk1, _ = lif(cur.unflatten(0, (T, B)), BETA, THETA)                        # [T, B, 12, 15, 15]
    cur = torch.nn.functional.max_pool2d(csnn.conv2(spk1.flatten(0, 1)), 2)
    spk2, _ = lif(cur.unflatten(0, (T, B)), BETA, THETA)                        # [T, B, 64, 5, 5]
    spk3, mem3 = lif(csnn.fc(spk2.flatten(2)), BETA, THETA)                     # [T, B, 10]
    return spk3, mem3, spk1


def test_peers_run_in_the_speed_benchmark(capsys, tmp_path):
    installed = [k for k, m in MODULES.items() if peers.version(peers.PEERS[k].package)]
    save = tmp_path / "peers.md"
    assert train_speed.main(["--device", "cpu", "--peers", "--T", "3", "--batch", "2", "--steps", "1", "--rounds", "1",
                             "--save", str(save)]) == 0
    result = train_speed_json(capsys.readouterr().out)
    names = {r["implementation"] for r in result["rows"]}
    text = save.read_text()
    for key in MODULES:
        label = {"snntorch-tutorial": "snnTorch", "spikingjelly": "SpikingJelly", "norse": "Norse"}[key]
        rows = [n for n in names if n.startswith(label)]
        if key in installed:
            assert len(rows) == 1, rows
            assert f"| {rows[0]}" in text and f"* {rows[0]}: " in text     # its row and its neuron note
        else:
            assert not rows and f"* skipped: {key}: not installed" in text
    if installed:
        assert len(result["peers"]) == 1 and result["peers"][0]["fast_to_fastest_peer"] > 0
        assert "fast / fastest peer (" in text
    if "snntorch-tutorial" in installed:                            # the same neuron: the same gradients
        line = next(x for x in text.splitlines() if "tutorial: gradients on the first batch" in x)
        assert float(line.split("differ from the reference's by ")[1].split(" ")[0]) < 1e-5


def test_peers_refuse_options():
    with pytest.raises(SystemExit):
        train_speed.main(["--peers", "--options"])


def train_speed_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])
