/* SPDX-License-Identifier: MIT */
/*
 * p2pio.h - the one public header of libp2pio.
 *
 * libp2pio moves large language model weights from files on NVMe SSDs into NVIDIA GPU
 * memory: peer-to-peer (the SSD DMAs straight into VRAM through the p2pio kernel module)
 * where the platform allows, and through a fast bounce path in pinned host memory
 * everywhere else. It parses GGUF models, loads them whole, and streams layers and MoE
 * experts through a VRAM budget.
 *
 * Conventions, for every function declared here:
 *  - one prefix, p2pio_ (P2PIO_ for macros and enum constants);
 *  - state lives behind opaque handles; constructors return int and hand the object back
 *    through an out-parameter;
 *  - 0 (or a count) on success, a negative errno on failure (p2pio_strerror() names it);
 *    predicates return bool;
 *  - where a failure has more to say (a parse error's byte offset, say), the function
 *    takes an optional struct p2pio_error * and fills it.
 *
 * The API is organised in sections, one per component of the library, each in its own
 * installed header under p2pio/ (as libnvme does); this header includes them all and is the
 * one to include.
 */
#ifndef P2PIO_H
#define P2PIO_H

#include "p2pio/common.h"
#include "p2pio/gguf.h"
#include "p2pio/engine.h"
#include "p2pio/placement.h"
#include "p2pio/model.h"
#include "p2pio/expert_policy.h"
#include "p2pio/expert_trace.h"
#include "p2pio/experts.h"

#endif /* P2PIO_H */
