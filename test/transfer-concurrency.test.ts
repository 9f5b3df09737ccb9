import assert from 'node:assert/strict';
import { Concurrency, type Lowered, type Ticket } from '../agent/transfer/concurrency.js';
import { ConnectionLost, OpenRefused } from '../agent/transfer/errors.js';
import { ServerOverloaded } from '../agent/transfer/overload.js';

/**
 * The step-down policy on its own (the transfers through misbehaving servers are in
 * transfer-overload.test.ts): what a failure under load lowers, that one overload seen by many
 * files at once lowers once, and that a file failing for itself gives the level back.
 */

function setUp(files = 8, requests = 64) {
  const told: Lowered[] = [];
  const concurrency = new Concurrency(files, requests, (lowered) => told.push(lowered), (err) => err instanceof ConnectionLost);
  const admitAll = async (n: number, connection = 0): Promise<Ticket[]> => {
    const tickets: Ticket[] = [];
    for (let i = 0; i < n; i++) tickets.push(await concurrency.admit(connection, Infinity));
    return tickets;
  };
  return { concurrency, told, admitAll };
}

const overloaded = (inFlight: number) => new ServerOverloaded('/f: the server failed (failure)', 'failure', inFlight);

describe('stepping down under load (unit)', () => {
  it('halves the files in flight while others are in flight, then the requests of the one file left; says so once', async () => {
    const { concurrency, told, admitAll } = setUp();
    const tickets = await admitAll(8);
    assert.equal(concurrency.afterFailure({}, overloaded(1), tickets[0]!, {}, false), 'again');
    assert.equal(concurrency.files, 4);
    // The other files failed by the same overload: tried again, no second step.
    assert.equal(concurrency.afterFailure({}, overloaded(1), tickets[1]!, {}, false), 'again');
    assert.equal(concurrency.files, 4);
    for (const ticket of tickets) concurrency.leave(ticket);
    const [alone] = await admitAll(1);
    assert.equal(concurrency.afterFailure({}, overloaded(64), alone!, {}, true), 'again');
    assert.deepEqual([concurrency.files, concurrency.requests], [4, 32]);
    assert.deepEqual(told, [{ files: 4, requests: null, kind: 'load', reason: 'failure' }]);
  });

  it('a failure at one file and one request is the file\'s own: it fails, and the level it lowered comes back', async () => {
    const { concurrency, admitAll } = setUp(4, 64);
    const job = {};
    let tickets = await admitAll(4);
    assert.equal(concurrency.afterFailure(job, overloaded(1), tickets[0]!, {}, false), 'again');
    for (const ticket of tickets) concurrency.leave(ticket);
    assert.equal(concurrency.files, 2);
    tickets = await admitAll(2);
    assert.equal(concurrency.afterFailure(job, overloaded(1), tickets[0]!, {}, false), 'again');
    for (const ticket of tickets) concurrency.leave(ticket);
    tickets = await admitAll(1);
    assert.equal(concurrency.afterFailure(job, overloaded(1), tickets[0]!, {}, false), 'as-is');
    concurrency.leave(tickets[0]!);
    concurrency.failedForGood(job);
    assert.deepEqual([concurrency.files, concurrency.requests], [4, 64]);
  });

  it('a refused open lowers the files only, and never when the file was alone', async () => {
    const { concurrency, told, admitAll } = setUp();
    const [alone] = await admitAll(1);
    assert.equal(concurrency.afterFailure({}, new OpenRefused('/f', 'too many open files'), alone!, {}, false), 'as-is');
    const more = await admitAll(3);
    assert.equal(concurrency.afterFailure({}, new OpenRefused('/f', 'too many open files'), more[0]!, {}, false), 'again');
    assert.deepEqual([concurrency.files, concurrency.requests], [2, 64]);
    assert.equal(told[0]!.kind, 'open');
  });

  it('a lost connection steps down from the second one in a run on, and one connection lost under many files counts once', async () => {
    const { concurrency, admitAll } = setUp();
    const first = {};
    const tickets = await admitAll(4);
    const lost = new ConnectionLost('the SFTP channel is closed (connection lost)');
    // The first: perhaps the network, an ordinary retry for every file on that connection.
    assert.equal(concurrency.afterFailure({}, lost, tickets[0]!, first, true), 'as-is');
    assert.equal(concurrency.afterFailure({}, lost, tickets[1]!, first, true), 'as-is');
    assert.equal(concurrency.files, 8);
    // Another connection lost under load: the level goes down, and that retry is not counted.
    assert.equal(concurrency.afterFailure({}, lost, tickets[2]!, {}, true), 'retry-free');
    assert.equal(concurrency.files, 2);
    // A failure that is no loss and no overload is left as it is.
    assert.equal(concurrency.afterFailure({}, new Error('no such file'), tickets[3]!, {}, true), 'as-is');
  });

  it('no more files on a connection than its open-handle limit', async () => {
    const { concurrency } = setUp();
    const held = [await concurrency.admit(0, 2), await concurrency.admit(0, 2)];
    let third: Ticket | null = null;
    const waiting = concurrency.admit(0, 2).then((ticket) => (third = ticket));
    const other = await concurrency.admit(1, 2);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(third, null, 'the third file on connection 0 waits');
    concurrency.leave(held[0]!);
    await waiting;
    assert.ok(third, 'and goes once one is done');
    concurrency.leave(other);
  });
});
