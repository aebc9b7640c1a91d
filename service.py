"""The ecomgan bento: `bentoml serve .` (or `ecomgan serve`) starts the `EcomGAN` entry service.

- `EcomGAN` (entry): each family's JSON APIs, OIP v2 over HTTP (/v2 on port 3000) and OIP v2
  over gRPC (port 3001), all reaching the models through one gateway. By default every entry
  worker holds the ONNX Runtime sessions and batches requests in-process.
- `Generator`, `Discriminator`: batched ONNX Runtime sessions, one batchable API per family.
  With ``ECOMGAN_TOPOLOGY=split`` the entry depends on them and they run as separate services,
  each with its own workers, resources and (on Kubernetes) scaling.
"""

from __future__ import annotations

import bentoml

from serving import oip_http, ui
from serving.auth import BearerAuthMiddleware
from serving.catalog import verify_models
from serving.edge import EdgeValidation
from serving.fastlane import front
from serving.ports import check_before_serving
from serving.services import (
    EntryBase,
    entry_config,
    family_api_bases,
    model_refs,
    role_bases,
    role_config,
    topology,
)
from serving.settings import Settings
from serving.shipped import ensure_shipped_models

SETTINGS = Settings.from_env()
check_before_serving(SETTINGS.grpc, SETTINGS.grpc_port)
ensure_shipped_models()
verify_models()


@bentoml.service(name="Generator", **role_config("generator"))
class Generator(*role_bases("generator")):
    """Every family's generator, batched."""


@bentoml.service(name="Discriminator", **role_config("discriminator"))
class Discriminator(*role_bases("discriminator")):
    """Every family's discriminator, batched."""


@bentoml.service(name="EcomGAN", **entry_config())
@bentoml.asgi_app(oip_http.app, path="/")
@bentoml.asgi_app(ui.app, path="/", name="ui")  # /, /ui, /docs: ahead of BentoML's index
class EcomGAN(EntryBase, model_refs(), *family_api_bases()):
    """User-facing APIs of every family, plus OIP v2 over HTTP and gRPC."""

    if topology() == "split":
        generator = bentoml.depends(Generator)
        discriminator = bentoml.depends(Discriminator)


# Outermost first: the token is checked before anything else is read.
EcomGAN.add_asgi_middleware(BearerAuthMiddleware)  # a no-op unless ECOMGAN_API_TOKEN is set
EcomGAN.add_asgi_middleware(
    EdgeValidation, apis=EcomGAN.apis, max_body_bytes=SETTINGS.max_body_bytes
)
# The hot routes (family JSON APIs, OIP inference) skip BentoML's per-request middleware.
front(EcomGAN)
