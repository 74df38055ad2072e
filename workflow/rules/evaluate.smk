rule evaluate:
    """Per-molecule metrics (EDM stability, RDKit validity/uniqueness/novelty, MLFF energy and forces, MLFF relaxation
    energy and heavy-atom RMSD); the reference row is a seeded random subset of its data split."""
    input:
        molecules=evaluate_input,
        train="results/data/{dataset}/train.parquet",
    output:
        metrics="results/metrics/{dataset}/{name}.parquet",
        summary="results/metrics/{dataset}/{name}.summary.json",
    log:
        "logs/evaluate/{dataset}/{name}.log",
    benchmark:
        "benchmarks/evaluate/{dataset}/{name}.tsv"
    conda:
        mlff_env(config["evaluate"]["mlff"])
    # One core leaves the other to sampling and DFT. Scoring takes seconds; the relaxation (evaluate.relax) takes
    # 0.12-0.18 s per QM9 molecule and ~0.4 s per sample at 100 steps (ANI-2x): 4-6 min for 2,000 reference molecules.
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        config=stage_config("evaluate"),
        limit=evaluate_limit,
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
    localrule: True
    conda:
        ENV
    shell:
        "elign summarize --summaries {input} --csv {output.csv} --markdown {output.markdown} > {log} 2>&1"
