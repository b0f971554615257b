"""The catalog benchmark's synthetic data: the vocabulary, the search terms the load draws from, and
:func:`generate_models` (varied, deterministic ``ModelRegistry`` rows). Shared by the seeder and the request
generator in ``bench/catalog.py``; not a script.
"""

from __future__ import annotations

import random
from decimal import Decimal

PROVIDERS = ["openai", "anthropic", "google", "neuroweaver", "custom"]
MODEL_TYPES = ["text", "vision", "multimodal", "embedding", "code"]
FAMILIES = [
    "aurora",
    "nimbus",
    "falcon",
    "orion",
    "atlas",
    "sage",
    "lumen",
    "vega",
    "helix",
    "quartz",
    "cobalt",
    "zephyr",
    "ember",
    "titan",
    "nova",
    "polaris",
    "cirrus",
    "granite",
    "juniper",
    "raven",
    "sparrow",
    "kestrel",
    "onyx",
    "cedar",
    "sequoia",
    "meridian",
    "pulsar",
    "quasar",
    "tundra",
    "sierra",
    "harbor",
    "beacon",
    "prism",
    "vertex",
    "fable",
    "lyra",
    "marlin",
    "condor",
    "basalt",
    "willow",
]
# Each family belongs to one provider (as in real catalogs), spread over all providers.
FAMILY_PROVIDER = {f: PROVIDERS[(i * 7 + 3) % len(PROVIDERS)] for i, f in enumerate(FAMILIES)}
SIZES = ["nano", "mini", "small", "base", "medium", "large", "xl", "1b", "3b", "7b", "8b", "13b", "34b", "70b", "405b"]
TYPE_WEIGHTS = {"text": 40, "code": 15, "multimodal": 18, "vision": 10, "embedding": 17}
VARIANTS = {
    "text": ["instruct", "chat", "base", "turbo", "pro", "lite", "reasoner"],
    "code": ["coder", "code-instruct", "codegen", "code-review"],
    "vision": ["vision", "vl", "ocr", "detect"],
    "multimodal": ["omni", "mm", "vision-chat", "audio-chat"],
    "embedding": ["embed", "embed-multilingual", "retriever", "rerank"],
}
CAPABILITIES = {
    "text": [
        "chat",
        "streaming",
        "function_calling",
        "json_mode",
        "reasoning",
        "long_context",
        "tool_use",
        "fine_tuning",
        "batch",
    ],
    "code": [
        "code_completion",
        "chat",
        "streaming",
        "function_calling",
        "long_context",
        "fill_in_the_middle",
        "tool_use",
    ],
    "vision": ["vision", "ocr", "object_detection", "image_classification", "batch"],
    "multimodal": ["chat", "vision", "audio", "streaming", "function_calling", "json_mode", "long_context", "tool_use"],
    "embedding": ["embeddings", "batch", "multilingual", "reranking"],
}
TASKS = {
    "text": [
        "chat",
        "summarization",
        "extraction",
        "classification",
        "translation",
        "question_answering",
        "sentiment_analysis",
        "planning",
    ],
    "code": ["coding", "code_review", "test_generation", "refactoring", "documentation"],
    "vision": ["image_captioning", "ocr", "object_detection", "document_parsing", "visual_inspection"],
    "multimodal": ["chat", "image_understanding", "document_parsing", "transcription", "summarization"],
    "embedding": ["semantic_search", "retrieval", "clustering", "deduplication", "recommendation"],
}
DOMAINS = [
    ("legal", "legal contract analysis"),
    ("medical", "medical record summarization"),
    ("finance", "financial report extraction"),
    ("retail", "retail product search"),
    ("support", "customer support automation"),
    ("education", "education and tutoring"),
    ("security", "security log triage"),
    ("scientific", "scientific literature review"),
    ("multilingual", "multilingual translation"),
    ("insurance", "insurance claims processing"),
    ("marketing", "marketing copy generation"),
    ("hr", "recruiting and resume screening"),
    ("logistics", "logistics and supply chain planning"),
    ("gaming", "game dialogue generation"),
]
CATEGORIES = [
    "general",
    "reasoning",
    "coding",
    "embeddings",
    "vision",
    "legal",
    "medical",
    "finance",
    "customer-support",
    "translation",
    "research",
    "security",
]
ADJECTIVES = [
    "Fast",
    "Compact",
    "Accurate",
    "Efficient",
    "Robust",
    "Lightweight",
    "State-of-the-art",
    "Low-latency",
    "Cost-efficient",
    "High-throughput",
    "Instruction-tuned",
    "Open-weight",
]
EXTRAS = [
    "Supports {n} languages.",
    "Optimised for on-premise deployment.",
    "Trained on curated {d} corpora.",
    "Handles long documents up to {ctx} tokens.",
    "Distilled from a larger teacher model.",
    "Quantised weights available for edge devices.",
    "Strong at structured JSON output.",
    "Evaluated on internal benchmarks with human review.",
    "Good default for batch workloads.",
]
TAGS = [
    "fast",
    "cheap",
    "flagship",
    "open-weight",
    "long-context",
    "multilingual",
    "beta",
    "edge",
    "private",
    "gpu",
    "cpu",
    "quantized",
    "distilled",
    "enterprise",
    "research",
    "realtime",
    "batch",
]
COMPLIANCE = ["SOC2", "GDPR", "HIPAA", "ISO27001", "PCI-DSS"]
LICENSES = ["proprietary", "apache-2.0", "mit", "llama-community", "cc-by-nc-4.0"]
STATUSES = (["active"] * 16) + (["experimental"] * 2) + ["deprecated", "maintenance"]
SECURITY_LEVELS = ["public", "internal", "internal", "restricted", "confidential"]

# Search terms the load uses; all of them occur in the seeded data (checked after seeding).
SEARCH_TERMS = [
    # single words from descriptions, tags, categories, capabilities, names
    "legal",
    "medical",
    "finance",
    "translation",
    "summarization",
    "multilingual",
    "retrieval",
    "support",
    "security",
    "scientific",
    "insurance",
    "reasoning",
    "vision",
    "embeddings",
    "coding",
    "fast",
    "compact",
    "streaming",
    "ocr",
    "rerank",
    "instruct",
    "turbo",
    "quantised",
    "json",
    # model families and partial names (name icontains + tsvector)
    "aurora",
    "nimbus",
    "falcon",
    "orion",
    "helix",
    "quartz",
    "zephyr",
    "polaris",
    "sequoia",
    "pulsar",
    "aurora-7b",
    "nimbus-mini",
    "falcon-70b",
    "vega-large",
    "titan-13b",
    # phrases (websearch: all words must match)
    "legal contract",
    "customer support",
    "fast summarization",
    "code review",
    "low latency",
    "medical record",
    "financial report",
    "long documents",
    "multilingual translation",
    "edge devices",
]


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def generate_models(count: int, seed: int) -> list[dict]:
    """``count`` varied, deterministic model rows (kwargs for ``ModelRegistry``)."""
    rng = random.Random(seed)
    seen: set[tuple[str, str]] = set()
    rows: list[dict] = []
    attempts = 0
    while len(rows) < count and attempts < count * 50:
        attempts += 1
        family = rng.choice(FAMILIES)
        model_type = _weighted(rng, TYPE_WEIGHTS)
        size = rng.choice(SIZES)
        variant = rng.choice(VARIANTS[model_type])
        name = f"{family}-{size}-{variant}"
        if rng.random() < 0.25:
            version = f"{rng.randint(2023, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        else:
            version = f"{rng.randint(1, 4)}.{rng.randint(0, 9)}.{rng.randint(0, 20)}"
        if (name, version) in seen:
            continue
        seen.add((name, version))
        provider = FAMILY_PROVIDER[family] if rng.random() < 0.85 else rng.choice(PROVIDERS)
        domain, domain_phrase = rng.choice(DOMAINS)
        caps = rng.sample(CAPABILITIES[model_type], k=rng.randint(1, min(5, len(CAPABILITIES[model_type]))))
        tasks = rng.sample(TASKS[model_type], k=rng.randint(1, 3))
        context_window = rng.choice([4_096, 8_192, 16_384, 32_768, 128_000, 200_000, 1_000_000])
        max_tokens = min(context_window, rng.choice([2_048, 4_096, 8_192, 16_384, 32_768]))
        big = size in ("large", "xl", "34b", "70b", "405b")
        if model_type == "embedding":
            latency = rng.uniform(20, 300)
        elif big:
            latency = rng.uniform(800, 6_000)
        else:
            latency = rng.uniform(120, 1_500)
        cost = Decimal(f"{10 ** rng.uniform(-5.3, -1.2):.6f}")
        adjective = rng.choice(ADJECTIVES)
        extra = rng.choice(EXTRAS).format(n=rng.randint(2, 120), d=domain, ctx=f"{context_window:,}")
        description = (
            f"{adjective} {model_type} model from the {family.title()} family ({size}), tuned for "
            f"{domain_phrase} and {tasks[0].replace('_', ' ')}. {extra}"
        )
        if rng.random() < 0.3:
            description += " " + rng.choice(EXTRAS).format(n=rng.randint(2, 120), d=domain, ctx=f"{context_window:,}")
        tags = sorted(set(rng.sample(TAGS, k=rng.randint(1, 4)) + ([domain] if rng.random() < 0.6 else [])))
        category = domain if rng.random() < 0.35 and domain in CATEGORIES else rng.choice(CATEGORIES)
        params = {
            "temperature": {"type": "float", "min": 0, "max": 2, "default": round(rng.uniform(0.2, 1.0), 2)},
            "top_p": {"type": "float", "min": 0, "max": 1, "default": 1},
        }
        if model_type in ("text", "code", "multimodal"):
            params["max_output_tokens"] = {"type": "int", "min": 1, "max": max_tokens, "default": min(1024, max_tokens)}
        rows.append(
            dict(
                name=name,
                version=version,
                provider=provider,
                model_type=model_type,
                capabilities=caps,
                supported_tasks=tasks,
                input_formats=["text"] + (["image"] if model_type in ("vision", "multimodal") else []),
                output_formats=["vector"]
                if model_type == "embedding"
                else ["text"] + (["json"] if "json_mode" in caps else []),
                max_tokens=max_tokens,
                context_window=context_window,
                max_batch_size=rng.choice([1, 1, 1, 8, 32, 256, 2048]) if model_type != "embedding" else 2048,
                supported_parameters=params,
                baseline_avg_latency_ms=round(latency, 1),
                baseline_cost_per_1k_tokens=cost,
                baseline_success_rate=round(rng.uniform(0.95, 0.9999), 4),
                baseline_avg_tokens_per_request=rng.randint(50, 4_000),
                description=description,
                tags=tags,
                category=category,
                license=rng.choice(LICENSES),
                documentation=f"https://docs.example.com/models/{name}",
                status=rng.choice(STATUSES),
                security_level=rng.choice(SECURITY_LEVELS),
                compliance=sorted(rng.sample(COMPLIANCE, k=rng.randint(0, 3))),
                popularity=int(10 ** rng.uniform(0, 6)),
                avg_rating=round(rng.uniform(2.5, 5.0), 2),
            )
        )
    if len(rows) < count:
        raise RuntimeError(f"could only generate {len(rows)} unique models")
    return rows
