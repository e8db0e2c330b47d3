import { describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { startRedisServer } from './redis-server';

function ping(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
    socket.once('data', (d) => {
      socket.end();
      resolve(d.toString().trim());
    });
    socket.once('error', reject);
  });
}

describe('startRedisServer', () => {
  it('runs a real Redis that can be stopped and started again on the same port', async () => {
    const redis = await startRedisServer();
    try {
      expect(await ping(redis.port)).toBe('+PONG');
      await redis.stop();
      await expect(ping(redis.port)).rejects.toThrow(/ECONNREFUSED/);
      await redis.start();
      expect(await ping(redis.port)).toBe('+PONG');
    } finally {
      await redis.stop();
    }
  });

  it('says clearly when redis-server is not installed', async () => {
    await expect(startRedisServer('/nonexistent/redis-server')).rejects.toThrow(
      /install Debian's redis-server/,
    );
  });
});
