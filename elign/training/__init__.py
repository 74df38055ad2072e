"""Training machinery shared by pretraining and FED-GRPO: the pretraining loop, one checkpoint/resume
implementation, optimizer and EMA, data parallelism, in-training evaluation, the pretrained backbone."""
