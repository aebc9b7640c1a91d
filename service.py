"""The ecomgan bento: `bentoml serve .` (or `ecomgan serve`) starts these three services.

- `Generator`, `Discriminator`: batched ONNX Runtime sessions, one batchable API per family;
  separate services so each gets its own workers, resources and (on Kubernetes) scaling.
- `EcomGAN` (entry): each family's JSON APIs, OIP v2 over HTTP (/v2 on port 3000) and OIP v2
  over gRPC (port 3001), all reaching the role services through one gateway.
"""

from __future__ import annotations

import bentoml

from serving import oip_http
from serving.auth import BearerAuthMiddleware
from serving.catalog import verify_models
from serving.services import (
    EntryBase,
    entry_config,
    family_api_bases,
    role_bases,
    role_config,
)
from serving.shipped import ensure_shipped_models

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
class EcomGAN(EntryBase, *family_api_bases()):
    """User-facing APIs of every family, plus OIP v2 over HTTP and gRPC."""

    generator = bentoml.depends(Generator)
    discriminator = bentoml.depends(Discriminator)


EcomGAN.add_asgi_middleware(BearerAuthMiddleware)  # a no-op unless ECOMGAN_API_TOKEN is set
