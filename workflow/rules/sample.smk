rule sample:
    """Sample molecules from a model: Parquet (one row per molecule, with a status) + SDF + XYZ."""
    input:
        model="results/models/{dataset}/{model}.pt",
        stats="results/data/{dataset}/stats.json",
    output:
        parquet="results/samples/{dataset}/{model}.parquet",
        sdf="results/samples/{dataset}/{model}.sdf",
        xyz="results/samples/{dataset}/{model}.xyz",
        summary="results/samples/{dataset}/{model}.summary.json",
    log:
        "logs/sample/{dataset}/{model}.log",
    benchmark:
        "benchmarks/sample/{dataset}/{model}.tsv"
    wildcard_constraints:
        model="pretrained|aligned",
    priority: 5
    conda:
        "../../envs/elign.yaml"
    threads: 1  # intra-op threads barely help this small network and oversubscribe a busy machine
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        config=stage_config("sample"),
    shell:
        "elign sample --config-json {params.config:q} --model {input.model} --stats {input.stats}"
        " --out {output.parquet} --sdf {output.sdf} --xyz {output.xyz} --summary {output.summary}"
        " --threads {threads} --no-progress > {log} 2>&1"


rule sample_guided:
    """The baseline FED-GRPO replaces: the pretrained model sampled with MLFF forces added to every step's mean."""
    input:
        model="results/models/{dataset}/pretrained.pt",
        stats="results/data/{dataset}/stats.json",
    output:
        parquet="results/samples/{dataset}/guided.parquet",
        sdf="results/samples/{dataset}/guided.sdf",
        xyz="results/samples/{dataset}/guided.xyz",
        summary="results/samples/{dataset}/guided.summary.json",
    log:
        "logs/sample/{dataset}/guided.log",
    benchmark:
        "benchmarks/sample/{dataset}/guided.tsv"
    conda:
        mlff_env(config["sample"]["guidance_mlff"])
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        config=stage_config("sample"),
    shell:
        "elign sample --config-json {params.config:q} --model {input.model} --stats {input.stats} --guidance mlff"
        " --out {output.parquet} --sdf {output.sdf} --xyz {output.xyz} --summary {output.summary}"
        " --threads 1 --no-progress > {log} 2>&1"


rule time_sampling:
    """Sampling time of every model on one batch, interleaved repeats in one process (sample.timing).

    It asks for every core so that nothing else runs beside it; torch itself uses one thread, as sampling.
    """
    input:
        pretrained="results/models/{dataset}/pretrained.pt",
        aligned="results/models/{dataset}/aligned.pt",
        stats="results/data/{dataset}/stats.json",
    output:
        "results/timing/{dataset}/sampling.json",
    log:
        "logs/timing/{dataset}.log",
    conda:
        mlff_env(config["sample"]["guidance_mlff"])
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        config=stage_config("sample"),
    shell:
        "elign time-sampling --config-json {params.config:q} --stats {input.stats} --threads 1"
        " --model pretrained={input.pretrained} --model aligned={input.aligned}"
        " --guided guided={input.pretrained} --out {output} > {log} 2>&1"
