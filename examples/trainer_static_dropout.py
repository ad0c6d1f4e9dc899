"""Fine-tune a VideoMAE folder with StaticDropout and bias tracking, the Hugging Face way (TrainingArguments).

    python examples/trainer_static_dropout.py --output_dir runs/trainer_example --use_cpu
Every TrainingArguments option works (--learning_rate, --logging_steps, --report_to, --push_to_hub, ...).
"""

from dataclasses import dataclass, field

from transformers import HfArgumentParser, TrainingArguments

import hf_stadyn
from hf_stadyn.debias import BiasTracker, ProbePairs, StaticDropoutConfig, apply_static_dropout
from hf_stadyn.models.auto import DEFAULT_MODEL_DIR
from hf_stadyn.training import StadynTrainer, synth_datasets


@dataclass
class Example:
    model: str = field(default=str(DEFAULT_MODEL_DIR), metadata={"help": "a save_pretrained VideoMAE folder"})
    num_train: int = field(default=64, metadata={"help": "StaDyn-Synth trap-split training clips"})
    p: float = field(default=0.5, metadata={"help": "StaticDropout drop probability of a static channel"})
    track_every: int = field(default=2, metadata={"help": "optimizer steps between bias measurements"})


ex, args = HfArgumentParser([Example, TrainingArguments]).parse_args_into_dataclasses()
model = hf_stadyn.load_model(ex.model)  # the data takes the model's classes and input size
labels, spec = tuple(model.config.id2label.values()), model.probe_input_spec()
synth = hf_stadyn.SynthConfig(num_frames=spec["num_frames"], size=spec["image_size"], motions=labels,
                              num_appearances=len(labels))  # fmt: skip
train, evals, _ = synth_datasets("trap", num_train=ex.num_train, num_eval=16, seed=args.seed, config=synth)
sd = StaticDropoutConfig(p=ex.p, refresh_every=ex.track_every, num_probe_pairs=16, seed=args.seed)
apply_static_dropout(model, sd)  # the static set is measured before step 0, then every track_every steps
pairs = ProbePairs([train[i]["frames"] for i in range(16)], num_pairs=16, seed=args.seed)
tracker = BiasTracker(pairs, static_dropout=sd, output_dir=args.output_dir)
trainer = StadynTrainer(model=model, args=args, train_dataset=train, eval_dataset=evals, bias_tracker=tracker)
trainer.train()  # callbacks attach themselves; loss / grad_norm / learning_rate logs are Trainer's own
trainer.save_model()  # config.json keeps the StaticDropout settings and static set
accuracy = {k: round(v, 3) for k, v in trainer.evaluate().items() if k.endswith("_accuracy")}
print(f"bias measured at steps {[r.step for r in tracker.history]}; {accuracy}; saved to {args.output_dir}")
