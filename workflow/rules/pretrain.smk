rule pretrain:
    """Pretrain the EDM backbone on the training split (resumes from its own checkpoint after a kill)."""
    input:
        train="results/data/{dataset}/train.parquet",
        stats="results/data/{dataset}/stats.json",
    output:
        model="results/models/{dataset}/pretrained.pt",
        history="results/models/{dataset}/history.parquet",
    params:
        config=stage_config("pretrain"),
        launch=pretrain_launcher,
    log:
        "logs/pretrain/{dataset}.log",
    benchmark:
        "benchmarks/pretrain/{dataset}.tsv"
    conda:
        "../../envs/model.yaml"
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=config["pretrain"]["gpus"],
    shell:
        "{params.launch} pretrain --config-json {params.config:q} --data-dir $(dirname {input.train})"
        " --out {output.model} --history {output.history} --no-progress > {log} 2>&1"
