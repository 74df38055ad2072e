rule evaluate:
    """Per-molecule metrics (EDM stability, RDKit validity/uniqueness/novelty, MLFF energy and forces)."""
    input:
        molecules=evaluate_input,
        train="results/data/{dataset}/train.parquet",
    output:
        metrics="results/metrics/{dataset}/{name}.parquet",
        summary="results/metrics/{dataset}/{name}.summary.json",
    params:
        config=stage_config("evaluate"),
        limit=evaluate_limit,
    log:
        "logs/evaluate/{dataset}/{name}.log",
    benchmark:
        "benchmarks/evaluate/{dataset}/{name}.tsv"
    conda:
        "../../envs/model.yaml"
    threads: 1  # ANI on a few hundred molecules takes seconds; one core leaves the other to sampling and DFT
    resources:
        mem_mb=8000,
        runtime=60,
    shell:
        "elign evaluate --config-json {params.config:q} --input {input.molecules} --name {wildcards.name}"
        " --train {input.train} --out {output.metrics} --summary {output.summary} {params.limit}"
        " --threads {threads} > {log} 2>&1"


rule summarize_metrics:
    """One table: the reference row (a data split) and every model's samples."""
    input:
        expand("results/metrics/{{dataset}}/{name}.summary.json", name=EVAL_NAMES),
    output:
        csv=report("results/metrics/{dataset}/summary.csv", category="Metrics"),
        markdown="results/metrics/{dataset}/summary.md",
    log:
        "logs/evaluate/{dataset}/summary.log",
    conda:
        "../../envs/data.yaml"
    localrule: True
    shell:
        "elign summarize --summaries {input} --csv {output.csv} --markdown {output.markdown} > {log} 2>&1"
