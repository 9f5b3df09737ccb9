import type { FastifyInstance } from 'fastify';
import { barChart, lineChart } from '../charts.js';
import { countryName, dayOf } from '../format.js';
import { param } from '../forms.js';
import type { AdminPages } from '../pages.js';
import { statistics, type Statistics } from '../queries.js';

/** The periods the page offers, in days; the default first. */
const PERIODS = [90, 30, 365] as const;
/** More countries than this become one "Other countries" bar. */
const COUNTRY_BARS = 12;
const DAY_MS = 86_400_000;

/** The charts of a period's figures, as SVG markup (null where there is nothing to draw). */
function charts(stats: Statistics) {
  const period = `from ${stats.from} to ${stats.to}`;
  const daily = stats.daily;
  const installations = daily.length
    ? lineChart({
        id: 'chart-installations',
        title: 'Installations over time',
        description: `Machines that have installed Ferry, counted up to each day, ${period}. Latest: ${daily.at(-1)!.installations}.`,
        // New installations a day are a small number beside the total: they are in the table below.
        series: [{ name: 'Installations', points: daily.map((d) => ({ day: d.day, value: d.installations })) }],
      })
    : null;
  const active = daily.length
    ? lineChart({
        id: 'chart-active',
        title: 'Active machines over time',
        description: `Machines that used Ferry or checked their license in on the day, and in the 7 days up to it, ${period}. Latest: ${daily.at(-1)!.activeMachinesDay} a day, ${daily.at(-1)!.activeMachinesWeek} a week.`,
        series: [
          { name: 'Active that day', points: daily.map((d) => ({ day: d.day, value: d.activeMachinesDay })) },
          { name: 'Active that week', points: daily.map((d) => ({ day: d.day, value: d.activeMachinesWeek })) },
        ],
      })
    : null;
  const top = stats.countries.filter((c) => c.trials > 0);
  const shown = top.length > COUNTRY_BARS ? top.slice(0, COUNTRY_BARS - 1) : top;
  const others = top.slice(shown.length).reduce((sum, c) => sum + c.trials, 0);
  const countries = top.length
    ? barChart({
        id: 'chart-countries',
        title: 'Trials by country',
        description: `Trials started ${period}, by the country of the machine. Most: ${countryName(top[0]!.country)}, ${top[0]!.trials}.`,
        orientation: 'horizontal',
        bars: [...shown.map((c) => ({ label: countryName(c.country), value: c.trials })), ...(others ? [{ label: 'Other countries', value: others }] : [])],
      })
    : null;
  const frequency = stats.frequency
    ? barChart({
        id: 'chart-frequency',
        title: 'How often machines use Ferry',
        description: `Machines by the number of times they used Ferry on ${stats.frequency.day}.`,
        orientation: 'vertical',
        bars: stats.frequency.buckets.map((b) => ({ label: `${b.bucket} ${b.bucket === '1' ? 'use' : 'uses'}`, value: b.machines })),
      })
    : null;
  return { installations, active, countries, frequency };
}

/** Installations, active machines, countries, use frequency and piracy signals, as the roll-up computed them. */
export default async function statisticsRoutes(app: FastifyInstance, pages: AdminPages): Promise<void> {
  app.get('/statistics', async (request, reply) => {
    const asked = Number(param(request.query, 'days'));
    const days = (PERIODS as readonly number[]).includes(asked) ? asked : PERIODS[0];
    const now = Date.now();
    const to = dayOf(new Date(now));
    const from = dayOf(new Date(now - (days - 1) * DAY_MS));
    const stats = await statistics(app.db, from, to);
    return pages.render(request, reply, 'statistics', { title: 'Statistics', stats, days, periods: [...PERIODS].sort((a, b) => a - b), charts: charts(stats) });
  });
}
