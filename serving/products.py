"""User-facing API of the products family: generate catalog images, score uploaded ones."""

from __future__ import annotations

import base64
import io
import secrets
from pathlib import Path
from typing import Annotated, Literal

import bentoml
import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import Field
from starlette.responses import Response

from ecomgan.contract import FamilyAPI
from ecomgan.families import get_family
from ecomgan.images import grid, png_bytes, to_model_range, to_uint8
from ecomgan.seeding import latent
from serving.errors import InvalidInput, answer

FAMILY = get_family("products")
CLASSES = FAMILY.classes
SIZE = 28
# The OpenAPI example and the tests' fixture; never a default.
EXAMPLE_GENERATE = {"category": "Sneaker", "count": 4, "seed": 42}
SEED_HEADER = "X-Ecomgan-Seed"
_LOOKUP = {name.lower(): i for i, name in enumerate(CLASSES)}
_LOOKUP.update({name.lower().replace("/", "-"): i for i, name in enumerate(CLASSES)})


def parse_category(category: str | int) -> int:
    """Category name (case-insensitive) or index -> label, or InvalidInput listing the choices."""
    if isinstance(category, bool):
        category = str(category)
    if isinstance(category, int) and 0 <= category < len(CLASSES):
        return category
    if isinstance(category, str):
        key = category.strip().lower()
        if key in _LOOKUP:
            return _LOOKUP[key]
        if key.isdigit() and int(key) < len(CLASSES):
            return int(key)
    choices = ", ".join(f"{i}={name!r}" for i, name in enumerate(CLASSES))
    raise InvalidInput(f"unknown category {category!r}; use a name or index: {choices}")


def decode_image(data: bytes, filename: str = "image") -> np.ndarray:
    """Decode an uploaded PNG/JPEG to (28, 28) uint8 pixels, or raise InvalidInput."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in ("PNG", "JPEG"):
                raise InvalidInput(
                    f"{filename}: {img.format} images are not accepted; send PNG or JPEG"
                )
            img.load()
            mode, size = img.mode, img.size
            if mode not in ("L", "1"):
                raise InvalidInput(
                    f"{filename}: expected a single-channel (grayscale) image, got mode {mode!r} "
                    f"with {len(img.getbands())} channels; convert it to grayscale 'L'"
                )
            if size != (SIZE, SIZE):
                raise InvalidInput(
                    f"{filename}: expected {SIZE}x{SIZE} pixels, got {size[0]}x{size[1]}; "
                    f"resize to {SIZE}x{SIZE} (Fashion-MNIST format: light product on black)"
                )
            return np.asarray(img.convert("L"), dtype=np.uint8)
    except InvalidInput:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        # PIL's message names its BytesIO object (`<_io.BytesIO object at 0x...>`): not ours.
        reason = "it is truncated" if "truncated" in str(exc) else "it is not a PNG or JPEG"
        raise InvalidInput(
            f"{filename}: cannot decode the file ({reason}); send a {SIZE}x{SIZE} grayscale "
            "PNG or JPEG"
        ) from None


Category = Annotated[
    str | int,
    Field(
        description=f"category name or index 0..{len(CLASSES) - 1}",
        examples=[EXAMPLE_GENERATE["category"]],
    ),
]
Count = Annotated[
    int, Field(description="images to generate", examples=[EXAMPLE_GENERATE["count"]])
]
Seed = Annotated[
    int | None,
    Field(
        description="omitted or null: a random seed (returned)", examples=[EXAMPLE_GENERATE["seed"]]
    ),
]


Encoding = Annotated[
    Literal["lists", "base64"],
    Field(description="`lists`: nested lists of 0..255; `base64`: the row-major uint8 bytes"),
]


def encode_pixels(pixels: np.ndarray, encoding: str) -> list | str:
    """uint8 images as nested lists, or as base64 of their row-major bytes."""
    if encoding == "base64":
        return base64.b64encode(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()).decode()
    return pixels.tolist()


def generator_inputs(label: int, count: int, seed: int, nz: int) -> dict[str, np.ndarray]:
    """The generator's inputs for `count` images of one category: seeded latents and labels."""
    return {"z": latent(count, nz, seed), "label": np.full(count, label, dtype=np.int64)}


class ProductsAPI(FamilyAPI):
    """Mixed into the entry service; needs `self.gateway` and `self.limits` (see `EntryBase`).

    Helpers are `__private` (name-mangled per class), so family APIs mixed into one entry
    class cannot shadow each other's.
    """

    examples = {"products_generate": EXAMPLE_GENERATE}

    @staticmethod
    def input_ranges(role: str, metadata: dict) -> dict[str, tuple[int, int]]:
        """Valid label range of both products models."""
        return {"label": (0, len(CLASSES) - 1)}

    @staticmethod
    def write_samples(
        run, nz: int, artifacts: dict[str, Path], out: Path, *, count: int, seed: int,
        category: str | None, conditions: dict[str, str],
    ) -> str:  # fmt: skip
        """`ecomgan sample` from an exported or registered generator: a PNG grid.

        The images are the ones `/products/generate` returns for the same category and seed.
        """
        if conditions:
            raise InvalidInput("--condition applies to tabular families; use --category")
        if category is None:
            raise InvalidInput(f"give --category: {', '.join(CLASSES)} (or 0..{len(CLASSES) - 1})")
        label = parse_category(category)
        pixels = to_uint8(run(generator_inputs(label, count, seed, nz))["image"])
        out = out if out.suffix else out.with_suffix(".png")
        grid(pixels, nrow=min(count, 10), pad=0 if count == 1 else 2).save(out, format="PNG")
        return f"wrote {count} {CLASSES[label]} images to {out}"

    def __count(self, count: int) -> int:
        if not 1 <= count <= self.limits.max_items:
            raise InvalidInput(f"count must be 1..{self.limits.max_items}, got {count}")
        return count

    async def __generate(self, category: str | int, count: int, seed: int | None):
        label = parse_category(category)
        n = self.__count(count)
        if seed is None:
            seed = secrets.randbelow(2**31)
        elif not 0 <= seed < 2**63:
            raise InvalidInput(f"seed must be 0..2**63-1, got {seed}")
        served = self.gateway.model(FAMILY.model_name("generator"))
        nz = served.signature.inputs[0].item_shape[0]
        out = await self.gateway.infer(served.name, generator_inputs(label, n, seed, nz))
        return label, seed, to_uint8(out["image"])

    async def __generate_arrays(
        self, category: str | int, count: int, seed: int | None, encoding: str
    ) -> dict:
        label, seed, pixels = await self.__generate(category, count, seed)
        images = encode_pixels(pixels, encoding)
        return {
            "category": CLASSES[label],
            "label": label,
            "seed": seed,
            "shape": list(pixels.shape),
            "encoding": encoding,
            "images": images,
        }

    async def __generate_grid(
        self, category: str | int, count: int, seed: int | None, nrow: int
    ) -> Response:
        if not 1 <= nrow <= 64:
            raise InvalidInput(f"nrow must be 1..64, got {nrow}")
        _, seed, pixels = await self.__generate(category, count, seed)
        # One image comes back as the bare 28x28 picture, so it can be sent to /products/score.
        image = grid(pixels, nrow=min(nrow, len(pixels)), pad=0 if len(pixels) == 1 else 2)
        return Response(png_bytes(image), media_type="image/png", headers={SEED_HEADER: str(seed)})

    async def __score(self, pixels: np.ndarray, labels: np.ndarray) -> dict:
        s = await self.gateway.score(
            FAMILY.model_name("discriminator"),
            {"image": to_model_range(pixels)[:, None], "label": labels},
        )
        return {
            "threshold": s.threshold,
            "target_fpr": s.target_fpr,
            "results": [
                {
                    "p_synthetic": float(p),
                    "label": "synthetic" if flag else "real",
                    "logit": float(lg),
                }
                for p, flag, lg in zip(s.p, s.flagged, s.logit, strict=True)
            ],
        }

    async def __score_upload(self, image: Path, category: str | int) -> dict:
        data = Path(image).read_bytes()
        if len(data) > self.limits.max_body_bytes:
            raise InvalidInput(f"image is {len(data)} bytes; at most {self.limits.max_body_bytes}")
        # Not the upload's name: BentoML spools it to a temporary file whose name means nothing.
        pixels = decode_image(data)[None]
        label = np.array([parse_category(category)], dtype=np.int64)
        result = await self.__score(pixels, label)
        return {**result["results"][0], "threshold": result["threshold"]}

    async def __score_arrays(self, images: list, categories: list) -> dict:
        if len(images) != len(categories):
            raise InvalidInput(
                f"give one category per image: {len(images)} images, {len(categories)} categories"
            )
        self.__count(len(images))
        try:
            pixels = np.asarray(images, dtype=np.float32)
        except ValueError:
            raise InvalidInput("images must be a list of 28x28 nested lists of numbers") from None
        if pixels.shape[1:] != (SIZE, SIZE):
            raise InvalidInput(
                f"each image must be {SIZE}x{SIZE} (one channel); got shape {list(pixels.shape)}"
            )
        if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 255:
            raise InvalidInput("pixel values must be finite numbers in 0..255")
        labels = np.array([parse_category(c) for c in categories], dtype=np.int64)
        return await self.__score(pixels, labels)

    @bentoml.api(route="/products/generate")
    async def products_generate(
        self,
        category: Category,
        count: Count = 1,
        seed: Seed = None,
        encoding: Encoding = "lists",
    ) -> dict:
        """Generate `count` product images of a category; same seed -> same images.

        Returns uint8 pixels (count x 28 x 28, light product on black) and the seed used (an
        omitted or null `seed` draws one): nested lists, or with ``"encoding": "base64"`` one
        base64 string of the row-major bytes (a quarter of the size; `numpy.frombuffer(
        base64.b64decode(images), numpy.uint8).reshape(shape)`).
        """
        return await answer(self.__generate_arrays(category, count, seed, encoding))

    @bentoml.api(route="/products/generate_png")
    async def products_generate_png(
        self,
        category: Category,
        count: Count = 1,
        seed: Seed = None,
        nrow: Annotated[int, Field(description="images per row of the grid")] = 8,
    ) -> Image.Image:
        """The same images as `/products/generate`, tiled into one PNG with `nrow` per row.

        The seed used is in the `X-Ecomgan-Seed` header. One image is returned as the bare
        28x28 picture (no border), ready for `/products/score`.
        """
        return await answer(self.__generate_grid(category, count, seed, nrow))

    @bentoml.api(route="/products/score")
    async def products_score(self, image: Path, category: str | int) -> dict:
        """Score one uploaded 28x28 grayscale PNG/JPEG: probability it is synthetic, and a label."""
        return await answer(self.__score_upload(image, category))

    @bentoml.api(route="/products/score_arrays")
    async def products_score_arrays(
        self, images: list[list[list[float]]], categories: list[str | int]
    ) -> dict:
        """Score a batch of 28x28 pixel arrays (values 0..255), one category per image."""
        return await answer(self.__score_arrays(images, categories))
