// Connito's expert shard: `model_expgroup_{g}.pt`, the experts of one expert group in torch.save's
// format (checkpoint_helper.save_state_dict_by_expert_group with active_expert_group_id = g). Our
// weights `h.{l}.moe.experts.{e}.{rest}` are named as Connito's `layers.{l}.mlp.experts.{e}.{rest}`
// (e the expert's id in its layer, Connito's "org" id); the other tensors stay out of the shard.
//
// Which experts are in group g: Connito reads an assignment table per group
// (expert_groups/<task>/expert_assignment.json: layer id → [[local id, original id], ...]) and
// counts an expert in if its id is either id of a pair for its layer (checkpoints.py
// _verify_expert_group). Given that table we use it; without one, expert e is in group e mod count.
import * as path from 'node:path';
import type { StoredTensor } from '../../model/safetensors';
import { fromFloat32, readStateDict, stateDictHash, toFloat32, writeStateDict } from './torch-pt';
import type { PtTensor, TorchDtype } from './torch-pt';

/** Connito's expert_assignment.json for one group: layer id → [[local expert id, original expert id], …]. */
export type ExpertAssignment = Record<string, [number, number][]>;

export type ExpertGroups = { count: number } | { assignment: ExpertAssignment };

export interface ShardOptions {
  group: number;
  groups: ExpertGroups;
  dtype: TorchDtype;
}

const OURS = /^h\.(\d+)\.moe\.experts\.(\d+)\.(.+)$/;
const CONNITO = /^layers\.(\d+)\.mlp\.experts\.(\d+)\.(.+)$/;

export class ExpertShardError extends Error {
  override name = 'ExpertShardError';
}

export function shardFileName(group: number): string {
  return `model_expgroup_${group}.pt`;
}

/** Connito's name for one of our expert tensors, or undefined for a tensor that is not an expert's. */
export function connitoName(ours: string): string | undefined {
  const m = OURS.exec(ours);
  return m ? `layers.${m[1]}.mlp.experts.${m[2]}.${m[3]}` : undefined;
}

/** Our name for a shard tensor; throws for a name that is not an expert tensor. */
export function ourName(connito: string): string {
  const m = CONNITO.exec(connito);
  if (!m)
    throw new ExpertShardError(
      `tensor '${connito}' is not an expert tensor (layers.<layer>.mlp.experts.<expert>.<param>); an expert shard holds experts only`,
    );
  return `h.${m[1]}.moe.experts.${m[2]}.${m[3]}`;
}

export function inGroup(layer: number, expert: number, group: number, groups: ExpertGroups): boolean {
  if ('count' in groups) return expert % groups.count === group;
  return (groups.assignment[String(layer)] ?? []).some(([local, org]) => local === expert || org === expert);
}

function checkGroup(group: number, groups: ExpertGroups): void {
  if (!Number.isSafeInteger(group) || group < 0)
    throw new ExpertShardError(`expert group ${group} must be an integer ≥ 0`);
  if ('count' in groups && (!Number.isSafeInteger(groups.count) || groups.count < 1 || group >= groups.count))
    throw new ExpertShardError(
      `expert group ${group} is not one of the ${groups.count} groups (0 to ${groups.count - 1})`,
    );
}

/** The tensors of group `opts.group`, named and typed as Connito's shard holds them. */
export function expertShard(weights: Map<string, StoredTensor>, opts: ShardOptions): Map<string, PtTensor> {
  checkGroup(opts.group, opts.groups);
  const shard = new Map<string, PtTensor>();
  for (const [name, t] of weights) {
    const m = OURS.exec(name);
    if (!m || !inGroup(Number(m[1]), Number(m[2]), opts.group, opts.groups)) continue;
    shard.set(connitoName(name)!, fromFloat32(name, t.data, t.shape, opts.dtype));
  }
  if (shard.size === 0)
    throw new ExpertShardError(
      `expert group ${opts.group} has no expert tensors in this model (is model.moe set, and does the group own any expert?)`,
    );
  return shard;
}

/** Writes `model_expgroup_{group}.pt` into `dir`; returns its path and Connito's model hash. */
export async function writeExpertShard(
  dir: string,
  weights: Map<string, StoredTensor>,
  opts: ShardOptions,
): Promise<{ file: string; hash: string; tensors: number }> {
  const shard = expertShard(weights, opts);
  const file = path.join(dir, shardFileName(opts.group));
  const hash = await writeStateDict(file, shard);
  return { file, hash, tensors: shard.size };
}

/** A shard file's tensors (Connito's names) and its model hash; throws on a non-expert tensor. */
export async function readExpertShard(file: string): Promise<{ tensors: Map<string, PtTensor>; hash: string }> {
  const tensors = await readStateDict(file);
  for (const name of tensors.keys()) ourName(name);
  return { tensors, hash: await stateDictHash(tensors) };
}

/** `weights` with the shard's experts in place of ours (as float32); the input map is not changed. */
export function mergeExpertShard(
  weights: Map<string, StoredTensor>,
  shard: Map<string, PtTensor>,
): Map<string, StoredTensor> {
  const merged = new Map(weights);
  for (const [name, t] of shard) {
    const ours = ourName(name);
    const target = weights.get(ours);
    if (!target) throw new ExpertShardError(`shard tensor '${name}' has no counterpart '${ours}' in this model`);
    if (target.shape.join() !== t.shape.join())
      throw new ExpertShardError(
        `shard tensor '${name}' has shape [${t.shape}]; the model's '${ours}' is [${target.shape}]`,
      );
    merged.set(ours, { shape: target.shape, data: toFloat32(t) });
  }
  return merged;
}
