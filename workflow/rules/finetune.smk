rule finetune:
    """FED-GRPO: align the pretrained model with MLFF force and energy rewards (resumes after a kill)."""
    input:
        model="results/models/{dataset}/pretrained.pt",
        stats="results/data/{dataset}/stats.json",
        train="results/data/{dataset}/train.parquet",  # its SMILES: finetune.novelty_penalty
    output:
        model="results/models/{dataset}/aligned.pt",
        history="results/models/{dataset}/finetune_history.parquet",
        record="results/models/{dataset}/aligned.json",  # what "aligned" is (the report's opening sentence)
    log:
        "logs/finetune/{dataset}.log",
    benchmark:
        "benchmarks/finetune/{dataset}.tsv"
    priority: 10  # on the critical path: it goes before sampling and DFT of the pretrained model
    conda:
        mlff_env(config["finetune"]["mlff"])
    threads: 1  # rollouts of a small network: one thread is fastest on a shared machine (see README)
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        config=stage_config("finetune", "sample.use_ema"),
    shell:
        "elign finetune --config-json {params.config:q} --model {input.model} --stats {input.stats}"
        " --train {input.train}"
        " --out {output.model} --history {output.history} --threads {threads} --no-progress > {log} 2>&1"
