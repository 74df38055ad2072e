rule pretrain:
    """The pretrained backbone: trained here (pretrain.source.kind: train, resumes after a kill), or a shipped
    backbone / a checkpoint file / an EDM checkpoint, checked and copied (elign.training.backbone)."""
    input:
        unpack(pretrain_inputs),
    output:
        model="results/models/{dataset}/pretrained.pt",
        history="results/models/{dataset}/history.parquet",
        backbone="results/models/{dataset}/backbone.json",
    log:
        "logs/pretrain/{dataset}.log",
    benchmark:
        "benchmarks/pretrain/{dataset}.tsv"
    conda:
        "../../envs/elign.yaml"
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=config["pretrain"]["gpus"],
    params:
        config=stage_config("pretrain"),
        launch=pretrain_launcher,
    shell:
        "{params.launch} pretrain --config-json {params.config:q} --data-dir $(dirname {input.stats})"
        " --out {output.model} --history {output.history} --backbone-json {output.backbone}"
        " --no-progress > {log} 2>&1"
