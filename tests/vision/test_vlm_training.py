"""Vision-language policies through the RL spine: the HF backend samples a VLM with each row's
picture, the trainer scores completions against the same pictures, `worldsmith train` runs RL on
an image environment from a VLM folder, and `worldsmith vision warmstart` writes that folder."""

import json

import pytest
import torch

from worldsmith import envs
from worldsmith.configuration import ConfigError
from worldsmith.envs.contract import split_seed
from worldsmith.policy.backend import SamplingParams, vision_inputs
from worldsmith.policy.hf_backend import HFBackend, sequence_logprobs
from worldsmith.policy.model import build_tiny_model, is_vision_folder, load_policy
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.rl.config import RunConfig
from worldsmith.vision.images import from_b64
from worldsmith.vision.vlm import VisionPolicy, build_tiny_vlm

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def vlm_folder(tmp_path_factory):
    model, processor = build_tiny_vlm(seed=0)
    return VisionPolicy(model, processor).save(tmp_path_factory.mktemp("vlm") / "policy")


def _scenes(n=2, env="vis_relation"):
    e = envs.get(env)
    insts = [e.sample(split_seed("train", i), 0.0) for i in range(n)]
    return insts, [from_b64(i.data["image"]["png_b64"]) for i in insts]


def test_backend_samples_with_each_rows_picture_and_the_scores_match(vlm_folder):
    model, processor = load_policy(vlm_folder)
    backend = HFBackend(model, processor)
    assert backend.takes_images and backend.banned_ids == [processor.tokenizer.convert_tokens_to_ids("<image>")]
    insts, pngs = _scenes()
    # one prompt, two pictures: sharing the prompt's prefill across the rows would be wrong
    prompts, images = [insts[0].prompt] * 4, [pngs[0], pngs[0], pngs[1], pngs[1]]
    out = backend.generate(prompts, SamplingParams(12, seed=5), images=images)
    assert len(out.vision) == 4 and out.vision[0]["pixel_values"].shape == (1, 3, 32, 32)
    assert not torch.isin(out.completion_ids[out.completion_mask], torch.tensor(backend.banned_ids)).any()
    # the behaviour log-probs are the policy's own, row by row, under the sampler's image-token mask
    banned = backend.banned_ids
    head = model.get_output_embeddings().register_forward_hook(
        lambda _m, _a, logits: logits.index_fill(-1, torch.tensor(banned), float("-inf")))
    args = (out.prompt_ids, out.prompt_mask, out.completion_ids, out.completion_mask)
    try:
        with torch.no_grad():
            scored = sequence_logprobs(model, *args, image_inputs=vision_inputs(out.vision))
            swapped = sequence_logprobs(model, *args, image_inputs=vision_inputs(out.vision[2:] + out.vision[:2]))
    finally:
        head.remove()
    mask = out.completion_mask
    assert torch.allclose(scored[mask], out.behaviour_logp[mask], atol=1e-4)
    assert not torch.allclose(swapped[mask], out.behaviour_logp[mask], atol=1e-3)  # the picture matters


def test_a_text_policy_refuses_images():
    tokenizer = build_char_tokenizer()
    backend = HFBackend(build_tiny_model(tokenizer), tokenizer)
    _, pngs = _scenes(1)
    assert not backend.takes_images
    with pytest.raises(ValueError, match="no image processor"):
        backend.generate(["hi"], SamplingParams(2), images=[pngs[0]])


def _vis_config(path, **train) -> RunConfig:
    return RunConfig.model_validate({
        "threads": 1, "model": {"path": str(path)}, "pool": [{"name": "vis_relation", "difficulty": 0.0}],
        "sampling": {"max_new_tokens": 10}, "optim": {"lr": 1e-2},
        "train": {"steps": 1, "prompts_per_step": 2, "group_size": 2, "minibatch_size": 4, "microbatch_size": 2,
                  **train},
        "eval": {"instances": 2, "samples": 2}})


def test_trainer_updates_the_vision_tower_from_rewards_on_pictures(vlm_folder):
    from worldsmith.rl.trainer import PhaseTimer, Trainer

    model, processor = load_policy(vlm_folder)
    trainer = Trainer(_vis_config(vlm_folder), model, processor)
    batch, metrics = trainer.collect(0, PhaseTimer())
    assert batch.rollouts.vision is not None and metrics["completion_tokens/mean"] > 0
    # the old log-probs were taken with the pictures: the first update's policy ratio is exactly 1
    batch.advantages = torch.where(torch.arange(4)[:, None] % 2 == 0, 1.0, -1.0) * batch.rollouts.completion_mask
    patch = next(p for n, p in model.named_parameters() if "patch_embedding" in n)
    before = patch.detach().clone()
    out = trainer.update(batch, 0, PhaseTimer())
    assert out["loss/approx_kl"] < 1e-6
    assert not torch.equal(before, patch.detach())


def test_worldsmith_train_runs_rl_on_an_image_environment(vlm_folder, tmp_path):
    from worldsmith.recipes import train_run

    summary = train_run(_vis_config(vlm_folder, steps=2), tmp_path / "run", progress=False, evaluate_before=True)
    assert summary["steps"] == 2 and summary["before"]["problems"] == 2
    assert is_vision_folder(tmp_path / "run" / "policy")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["loss/approx_kl"] < 1e-6
    with pytest.raises(ConfigError, match="vision warmstart"):
        cfg = _vis_config(vlm_folder).model_copy(deep=True)
        cfg.sft.examples = 8
        train_run(cfg, tmp_path / "sft", progress=False)


def test_vision_warmstart_writes_a_policy_folder_train_can_start_from(tmp_path, capsys):
    from worldsmith.cli import main

    out = tmp_path / "warm"
    assert main(["vision", "warmstart", "--out", str(out), "--steps", "4", "--examples", "8", "--eval", "2",
                 "--quiet", "--env", "vis_count@0.2", "--perception-steps", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 4 and summary["final_loss"] < summary["first_loss"]
    assert summary["perception"]["steps"] == 3 and summary["perception"]["final_loss"] > 0
    assert summary["held_out"]["vis_count@0.2"]["instances"] == 2
    assert is_vision_folder(out) and json.loads((out / "warmstart.json").read_text())["examples"] == 8
    for argv, message in ((["--out", str(out)], "already holds a policy"),
                          (["--out", str(tmp_path / "x"), "--env", "arithmetic_chain"], "not an image environment"),
                          (["--out", str(tmp_path / "x"), "--env", "vis_count@2"], "--env vis_count@2")):
        assert main(["vision", "warmstart", "--steps", "1", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


def test_compare_runs_methods_on_pictures_from_one_vlm_folder_per_seed(vlm_folder, tmp_path):
    import shutil

    from worldsmith.compare import compare

    shutil.copytree(vlm_folder, tmp_path / "start_s3")
    cfg = _vis_config(tmp_path / "start_s{seed}")
    result = compare(cfg, ["grpo", "mssr"], [3], tmp_path / "cmp", progress=False, log=None)
    assert result["done"] == 2
    runs = [json.loads(line) for line in (tmp_path / "cmp" / "runs.jsonl").read_text().splitlines()]
    assert sorted(r["method"] for r in runs) == ["grpo", "mssr"]
    assert is_vision_folder(tmp_path / "cmp" / "starts" / "s3" / "policy_init")
    with pytest.raises(FileNotFoundError):  # seed 4 has no start folder
        compare(cfg, ["grpo"], [4], tmp_path / "cmp4", progress=False, log=None)


def test_worldsmith_eval_reads_a_vlm_folder(vlm_folder, capsys):
    from worldsmith.cli import main

    assert main(["eval", "--model", str(vlm_folder), "--env", "vis_relation@0", "--instances", "2", "--samples", "1",
                 "--max-new-tokens", "4", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["overall"]["problems"] == 2


def test_an_unusable_picture_is_counted_and_the_row_asked_without_one(vlm_folder):
    from dataclasses import replace

    from worldsmith.rl.trainer import Trainer

    model, processor = load_policy(vlm_folder)
    trainer = Trainer(_vis_config(vlm_folder), model, processor)
    insts, _ = _scenes(2)
    broken = replace(insts[1], data={**insts[1].data, "image": {"png_b64": "aGVsbG8="}})  # "hello", not a PNG
    out = trainer.generate_for([insts[0], broken], SamplingParams(4, seed=0))
    assert out.vision[0] is not None and out.vision[1] is None
    assert trainer._pending_metrics["images/unusable"] == 1


def test_perception_pictures_hold_one_object_of_the_asked_colour():
    import io
    import random

    from PIL import Image

    from worldsmith.vision.envs import COLOURS
    from worldsmith.vision.perception import picture, side_at

    rng = random.Random(0)
    for layout, side in (("fill", 16), ("object", 16), ("curriculum", 40), ("curriculum", 12)):
        pixels = Image.open(io.BytesIO(picture("blue", layout, rng, side))).convert("RGB").get_flattened_data()
        coloured = [p for p in pixels if p != (255, 255, 255)]
        assert set(coloured) == {COLOURS["blue"]}
        assert len(coloured) == 128 * 128 if layout == "fill" else 0 < len(coloured) <= side * side
    assert [side_at(s, 100, 12) for s in (0, 75, 99)] == [128, 12, 12]
    with pytest.raises(ValueError, match="unknown layout"):
        picture("blue", "nope", rng)
