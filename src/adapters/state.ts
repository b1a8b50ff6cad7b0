import type { SSMClient } from '@aws-sdk/client-ssm';
import { GetParameterCommand, PutParameterCommand } from '@aws-sdk/client-ssm';
import type { StateStore } from '../core/ports.ts';
import { errorCode } from '../errors.ts';
import { awsClients } from './clients.ts';
import { type AdapterDeps, makeCall } from './common.ts';

/**
 * State kept as plain SSM parameters under one prefix: a handful of small values written rarely,
 * which needs no table or bucket of its own and is easy for a person to inspect or reset.
 */
export function createSsmStateStore(deps: AdapterDeps & { prefix: string; ssm?: SSMClient }): StateStore {
  const ssm = deps.ssm ?? awsClients.ssm;
  const call = makeCall(deps);
  const name = (key: string) => `${deps.prefix.replace(/\/+$/, '')}/${key}`;
  return {
    async get(key) {
      try {
        const output = await call('GetParameter', (options) =>
          ssm.send(new GetParameterCommand({ Name: name(key) }), options),
        );
        return output.Parameter?.Value;
      } catch (error) {
        if (errorCode(error) === 'ParameterNotFound') return undefined;
        throw error;
      }
    },
    async put(key, value) {
      await call('PutParameter', (options) =>
        ssm.send(
          new PutParameterCommand({ Name: name(key), Value: value, Type: 'String', Overwrite: true }),
          options,
        ),
      );
    },
  };
}
