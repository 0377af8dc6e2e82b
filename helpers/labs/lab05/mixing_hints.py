"""Lab 5, exercise 5's hints in words of no framework (:mod:`helpers.labs.lab05.mixing`);
the adapters add their own."""

from __future__ import annotations

from helpers.labs.kit import Hints

__all__ = ["HINTS"]

# Exercise 5's known mistakes in words of no framework; the adapters add their own.
HINTS = Hints(
    {
        "mix_partner_inverse": "the partner of image i is images[perm[i]], the batch "
        "gathered with perm (images[perm]), not the image j with perm[j] = i (perm's "
        "inverse, what scattering into perm's positions gives)",
        "mix_partner_self": "mix each image with its partner images[perm[i]], not with "
        "itself: lam * x + (1 - lam) * x is x again",
        "mix_lam_swapped": "lam weighs the original image: lam[i] * x[i] + (1 - lam[i]) * "
        "x[perm[i]], not (1 - lam[i]) * x[i] + lam[i] * x[perm[i]]",
        "mix_targets_hard": "mix the targets too: lam * one_hot(labels) + (1 - lam) * "
        "one_hot(labels[perm]); the hard one-hot targets ignore the partner's class (a lam "
        "of 1 gives them too: an integer division, area // (H * W), rounds the share to 0)",
        "mix_targets_weight": "weigh the targets exactly as the images: lam[i] for the "
        "original's one-hot row, 1 - lam[i] for the partner's (labels[perm[i]])",
        "mix_targets_sum": "each target row is a distribution and sums to 1: lam * "
        "one_hot(labels) + (1 - lam) * one_hot(labels[perm]), both terms",
        "mix_targets_partner": "the partner's label is labels[perm[i]], the label of the "
        "image you mixed in (the same gather as for the images)",
        "mix_uint8": "cast the images to float32 before mixing and return them as "
        "float32: uint8 arithmetic wraps around past 255 and a cast back to uint8 "
        "truncates the blend; return the blend as it is, not rounded either",
        "cut_uint8": "return the images as float32, as mixup does: paste into a float32 "
        "copy of the batch, not into a uint8 one",
        "cut_nothing": "your images are the input batch, nothing pasted: the slice "
        "[top:top + height, left:left + width] is empty only for a box of size 0; an end "
        "written as -(H - top - height) is -0, an empty slice, where the box touches the "
        "border (or you pasted each image into itself)",
        "cut_lam_nchw": "H and W are images.shape[1:3], the rows and columns of the NHWC "
        "batch: shape[2:4] or shape[-2:] are (W, C), as they would be (H, W) in NCHW",
        "mix_scale": "keep the images in 0..255 units, float32: the exercise returns the "
        "blend of the raw pixels, not divided by 255 nor normalised (normalisation comes "
        "after, as H.vision.to_input does it)",
        "mix_lam_broadcast": "lam has one weight per image, shape (B,): index it as "
        "lam[:, None, None, None] against the (B, H, W, C) images and lam[:, None] "
        "against the (B, num_classes) targets, not lam[0] for the whole batch",
        "mix_shapes": "return a pair: the images (B, H, W, C), as the input batch, and "
        "the targets (B, num_classes), one_hot(labels, num_classes) with the argument (the "
        "check's batches have 10 and 7 classes)",
        "mix_float32": "return the images and the targets as float32, not float64, "
        "float16 or bfloat16 (an integer one_hot is cast to float32 before the weights)",
        "mix_loop": "work on the whole batch at once: gather the partners with images[perm] "
        "and broadcast lam, no Python loop over the images (the number of operations "
        "grew with the batch size)",
        "cut_box_swapped": "the box is (top, left, height, width) of an NHWC batch: rows "
        "top .. top + height - 1 on axis 1, columns left .. left + width - 1 on axis 2; "
        "yours swaps rows and columns (or top and left, or height and width)",
        "cut_box_nchw": "the batch is NHWC, (B, H, W, C): paste along axes 1 (rows) and 2 "
        "(columns), images[:, top:top + height, left:left + width], not axes 2 and 3 as "
        "in NCHW",
        "cut_box_bounds": "the box is (top, left, height, width), not two corners: it covers "
        "rows top .. top + height - 1 and columns left .. left + width - 1, the slice "
        "[top:top + height, left:left + width], no + 1 or - 1",
        "cut_reversed": "paste the partner's box into the original: start from images "
        "(float32) and replace its box by images[perm]'s, not the other way round",
        "cut_lam_area": "lam is the fraction of the image left to the original: "
        "1 - height * width / (H * W), the box's area over the image's, not a side's "
        "ratio (height / H) nor the box's own fraction",
        "cut_lam_swapped": "the original keeps 1 - area / (H * W) of the target and the "
        "partner gets area / (H * W), the share of pixels each one supplies",
    }
)
