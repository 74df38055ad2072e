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
    params:
        config=stage_config("sample"),
    log:
        "logs/sample/{dataset}/{model}.log",
    benchmark:
        "benchmarks/sample/{dataset}/{model}.tsv"
    conda:
        "../../envs/model.yaml"
    threads: 1  # intra-op threads barely help this small network and oversubscribe a busy machine
    resources:
        mem_mb=8000,
        runtime=120,
    shell:
        "elign sample --config-json {params.config:q} --model {input.model} --stats {input.stats}"
        " --out {output.parquet} --sdf {output.sdf} --xyz {output.xyz} --summary {output.summary}"
        " --threads {threads} --no-progress > {log} 2>&1"
