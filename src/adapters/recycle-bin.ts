import type { EC2Client, ImageRecycleBinInfo } from '@aws-sdk/client-ec2';
import { ListImagesInRecycleBinCommand } from '@aws-sdk/client-ec2';
import { SignatureV4 } from '@smithy/signature-v4';
import type { RecycleBinPort } from '../core/ports.ts';
import { errorCode, InventoryError, UnsupportedApiError } from '../errors.ts';
import type { BinnedImage, RetentionRule } from '../model.ts';
import { awsClients } from './clients.ts';
import { type AdapterDeps, type Call, forEachConcurrent, makeCall, paginate } from './common.ts';
import { CONNECTION_TIMEOUT_MS, REQUEST_TIMEOUT_MS } from './http.ts';
import { isUnsupportedAction } from './retry.ts';

/**
 * The Recycle Bin: which deregistered images can still be restored, and which retention rules send
 * removals there. The rules come from the `rbin` REST-JSON API, called here directly: the published
 * rbin SDK client is far older than the other clients and would bring a second copy of the SDK core
 * into the bundle. Each request is signed with the EC2 client's own credentials, Region and hash,
 * and sent through its HTTP handler, so it shares their credential chain, timeouts and connections.
 */

export interface RecycleBinDeps extends AdapterDeps {
  /** Overrides where Recycle Bin requests go (an emulator, a VPC endpoint). */
  rbinEndpoint?: string;
  /** Where AWS_ENDPOINT_URL_RBIN and AWS_ENDPOINT_URL are read; process.env unless a test says otherwise. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** ListImagesInRecycleBin and ListRules both take 1 to 1,000. */
const PAGE_SIZE = 1000;
/** One attempt, connection to last byte: the answers are a few kilobytes, read as soon as the headers arrive. */
const ATTEMPT_TIMEOUT_MS = CONNECTION_TIMEOUT_MS + REQUEST_TIMEOUT_MS;
/** GetRule calls in flight at once: a Region holds few rules, and a sweep reads them once. */
const CONCURRENCY = 4;

const RESOURCE_TYPES: readonly RetentionRule['resourceType'][] = ['EC2_IMAGE', 'EBS_SNAPSHOT'];

/** What a REST-JSON service answers for a path it has no operation for. */
const UNKNOWN_OPERATION_CODE = 'UnknownOperationException';
/** A rule deleted between ListRules and GetRule. */
const MISSING_RULE_CODE = 'ResourceNotFoundException';

/**
 * An error answer from the Recycle Bin, shaped like the SDK's: `name` is the AWS error code and
 * `$metadata.httpStatusCode` the status, so retry.ts tells throttling and server faults apart as
 * it does for every SDK call.
 */
export class RecycleBinServiceError extends Error {
  readonly $fault: 'client' | 'server';
  readonly $metadata: { httpStatusCode: number; requestId?: string };

  constructor(code: string, message: string, httpStatusCode: number, requestId?: string) {
    super(message);
    this.name = code;
    this.$fault = httpStatusCode >= 500 ? 'server' : 'client';
    this.$metadata = { httpStatusCode, ...(requestId ? { requestId } : {}) };
  }
}

/** The endpoint the SDK would pick for a client of service `rbin`: configured ones first. */
export function rbinEndpoint(region: string, env: Readonly<Record<string, string | undefined>>): string {
  if (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS?.trim().toLowerCase() !== 'true') {
    const configured = env.AWS_ENDPOINT_URL_RBIN?.trim() || env.AWS_ENDPOINT_URL?.trim();
    if (configured) return configured;
  }
  // The China Regions are the one commercial partition with a DNS suffix of their own.
  const suffix = region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  return `https://rbin.${region}.${suffix}`;
}

interface RbinRequest {
  method: 'GET' | 'POST';
  path: string;
  body?: Record<string, unknown>;
}

type Headers = Record<string, string | string[] | undefined>;

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name] ?? headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The AWS error code of a REST-JSON error answer, as the SDK reads it: the x-amzn-ErrorType header,
 * else `__type` or `code` in the body, without a namespace (`com.amazonaws.rbin#`) or a URL suffix.
 */
export function awsJsonErrorCode(headers: Headers, body: unknown): string | undefined {
  const fields = body !== null && typeof body === 'object' ? (body as Record<string, unknown>) : {};
  for (const candidate of [header(headers, 'x-amzn-errortype'), fields.__type, fields.code, fields.Code]) {
    if (typeof candidate !== 'string' || candidate.trim() === '') continue;
    const code = candidate.split(':')[0]?.split('#').pop()?.trim();
    if (code) return code;
  }
  return undefined;
}

/** The body as a JSON object, or undefined when it is anything else (an HTML page, say). */
function parseJsonObject(text: string): Record<string, unknown> | undefined {
  if (text.trim() === '') return {};
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

async function resolveRegion(ec2: EC2Client): Promise<string> {
  const region: unknown = ec2.config.region;
  const value = typeof region === 'function' ? await (region as () => Promise<unknown>)() : region;
  if (typeof value !== 'string' || value === '') throw new InventoryError('no AWS Region is configured');
  return value;
}

/** One signed request to the Recycle Bin; its answer's JSON, or a thrown error that says what came back. */
function createRbinSender(ec2: EC2Client, deps: RecycleBinDeps) {
  const env = deps.env ?? process.env;
  return async (
    operation: string,
    request: RbinRequest,
    abortSignal?: AbortSignal,
  ): Promise<Record<string, unknown>> => {
    const config = ec2.config;
    const [credentials, region] = await Promise.all([config.credentials(), resolveRegion(ec2)]);
    const url = new URL(deps.rbinEndpoint ?? rbinEndpoint(region, env));
    const body = request.body === undefined ? undefined : JSON.stringify(request.body);
    const unsigned = {
      method: request.method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: `${url.pathname.replace(/\/+$/, '')}${request.path}`,
      query: {},
      headers: {
        host: url.host,
        ...(body === undefined
          ? {}
          : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }),
      } as Record<string, string>,
      ...(body === undefined ? {} : { body }),
    };
    const signer = new SignatureV4({ credentials, region, service: 'rbin', sha256: config.sha256 });
    // The offset the EC2 client learnt from a clock-skew answer, so this request is not refused for the same skew.
    const offsetMs = typeof config.systemClockOffset === 'number' ? config.systemClockOffset : 0;
    const signed = await signer.sign(unsigned, { signingDate: new Date(Date.now() + offsetMs) });
    // The EC2 client's handler carries clientTimeouts() (http.ts) and times out first; this bound
    // holds even for a client built without them, and ends the attempt as a timeout, not an abort.
    const attemptTimeout = AbortSignal.timeout(ATTEMPT_TIMEOUT_MS);
    const signal = abortSignal ? AbortSignal.any([abortSignal, attemptTimeout]) : attemptTimeout;
    let status: number;
    let headers: Headers;
    let text: string;
    try {
      const { response } = (await config.requestHandler.handle(signed, { abortSignal: signal })) as {
        response: { statusCode: number; headers: Headers; body: unknown };
      };
      status = response.statusCode;
      headers = response.headers;
      text = new TextDecoder().decode(await config.streamCollector(response.body));
    } catch (error) {
      if (attemptTimeout.aborted && !abortSignal?.aborted) {
        throw Object.assign(
          new Error(`${operation} got no answer within ${ATTEMPT_TIMEOUT_MS} ms`, { cause: error }),
          {
            name: 'TimeoutError',
          },
        );
      }
      throw error;
    }
    const parsed = parseJsonObject(text);
    if (status >= 200 && status < 300 && parsed !== undefined) return parsed;
    const code = status >= 300 ? awsJsonErrorCode(headers, parsed) : undefined;
    if (code === undefined) {
      // An HTML error page, or a 404 from an emulator without the service: nothing AWS said.
      const answer = new RecycleBinServiceError(
        'UnknownError',
        `HTTP ${status} without an AWS error code: ${text.slice(0, 200)}`,
        status,
      );
      throw new UnsupportedApiError(operation, { cause: answer });
    }
    const message = [parsed?.message, parsed?.Message].find((value) => typeof value === 'string');
    throw new RecycleBinServiceError(
      code,
      typeof message === 'string' ? message : code,
      status,
      header(headers, 'x-amzn-requestid'),
    );
  };
}

function unsupportedAware(call: Call): Call {
  return async (operation, send) => {
    try {
      return await call(operation, send);
    } catch (error) {
      if (error instanceof UnsupportedApiError) throw error;
      if (isUnsupportedAction(error) || errorCode(error) === UNKNOWN_OPERATION_CODE) {
        throw new UnsupportedApiError(operation, { cause: error });
      }
      throw error;
    }
  };
}

interface RawTag {
  ResourceTagKey?: unknown;
  ResourceTagValue?: unknown;
}

function toTags(raw: unknown): { key: string; value: string }[] {
  if (!Array.isArray(raw)) return [];
  return (raw as RawTag[]).flatMap((tag) =>
    typeof tag.ResourceTagKey === 'string'
      ? [
          {
            key: tag.ResourceTagKey,
            value: typeof tag.ResourceTagValue === 'string' ? tag.ResourceTagValue : '',
          },
        ]
      : [],
  );
}

/** Recycle Bin periods come in days today; any other unit is refused rather than guessed at. */
function retentionDays(identifier: string, raw: unknown): number {
  const period = (raw ?? {}) as { RetentionPeriodValue?: unknown; RetentionPeriodUnit?: unknown };
  const value = period.RetentionPeriodValue;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InventoryError(`retention rule ${identifier} has no retention period`);
  }
  if (period.RetentionPeriodUnit !== 'DAYS') {
    throw new InventoryError(
      `retention rule ${identifier} has a retention period in ${JSON.stringify(period.RetentionPeriodUnit)}, not DAYS`,
    );
  }
  return value;
}

/** GetRule's answer as the model has it; ListRules' summaries lack the tags and the status. */
export function toRetentionRule(
  raw: Record<string, unknown>,
  identifier: string,
  resourceType: RetentionRule['resourceType'],
): RetentionRule {
  return {
    identifier,
    resourceType:
      raw.ResourceType === 'EC2_IMAGE' || raw.ResourceType === 'EBS_SNAPSHOT'
        ? raw.ResourceType
        : resourceType,
    retentionDays: retentionDays(identifier, raw.RetentionPeriod),
    resourceTags: toTags(raw.ResourceTags),
    excludeTags: toTags(raw.ExcludeResourceTags),
    // Only `available` rules retain; a missing status is not read as one.
    status: typeof raw.Status === 'string' ? raw.Status : 'unknown',
  };
}

function toBinnedImage(raw: ImageRecycleBinInfo): BinnedImage | undefined {
  if (!raw.ImageId) return undefined;
  return {
    imageId: raw.ImageId,
    ...(raw.Name ? { name: raw.Name } : {}),
    ...(raw.RecycleBinEnterTime ? { enteredAt: new Date(raw.RecycleBinEnterTime) } : {}),
    ...(raw.RecycleBinExitTime ? { leavesAt: new Date(raw.RecycleBinExitTime) } : {}),
  };
}

export function createRecycleBin(deps: RecycleBinDeps = {}): RecycleBinPort {
  const ec2 = deps.ec2 ?? awsClients.ec2;
  const call = unsupportedAware(makeCall(deps));
  const send = createRbinSender(ec2, deps);

  const rbin = (operation: string, request: RbinRequest) =>
    call(operation, (options) => send(operation, request, options.abortSignal));

  async function ruleIdentifiers(resourceType: RetentionRule['resourceType']): Promise<string[]> {
    const identifiers: string[] = [];
    await paginate(
      'ListRules',
      async (NextToken) => {
        const page = await rbin('ListRules', {
          method: 'POST',
          path: '/list-rules',
          body: { ResourceType: resourceType, MaxResults: PAGE_SIZE, ...(NextToken ? { NextToken } : {}) },
        });
        return {
          Rules: page.Rules,
          NextToken: typeof page.NextToken === 'string' ? page.NextToken : undefined,
        };
      },
      (page) => {
        const rules = Array.isArray(page.Rules) ? (page.Rules as { Identifier?: unknown }[]) : [];
        for (const rule of rules) if (typeof rule.Identifier === 'string') identifiers.push(rule.Identifier);
      },
    );
    return identifiers;
  }

  async function rule(
    identifier: string,
    resourceType: RetentionRule['resourceType'],
  ): Promise<RetentionRule | undefined> {
    try {
      const raw = await rbin('GetRule', { method: 'GET', path: `/rules/${encodeURIComponent(identifier)}` });
      return toRetentionRule(raw, identifier, resourceType);
    } catch (error) {
      if (errorCode(error) === MISSING_RULE_CODE) return undefined;
      throw error;
    }
  }

  return {
    async imagesInRecycleBin() {
      const images: BinnedImage[] = [];
      await paginate(
        'ListImagesInRecycleBin',
        (NextToken) =>
          call('ListImagesInRecycleBin', (options) =>
            ec2.send(new ListImagesInRecycleBinCommand({ MaxResults: PAGE_SIZE, NextToken }), options),
          ),
        (page) => {
          for (const raw of page.Images ?? []) {
            const image = toBinnedImage(raw);
            if (image) images.push(image);
          }
        },
      );
      return images;
    },

    async retentionRules() {
      const rules: RetentionRule[] = [];
      for (const resourceType of RESOURCE_TYPES) {
        const identifiers = await ruleIdentifiers(resourceType);
        // In ListRules' order, whichever GetRule answers first.
        const found: (RetentionRule | undefined)[] = new Array(identifiers.length);
        await forEachConcurrent([...identifiers.keys()], CONCURRENCY, async (index) => {
          found[index] = await rule(identifiers[index] as string, resourceType);
        });
        for (const entry of found) if (entry) rules.push(entry);
      }
      return rules;
    },
  };
}
