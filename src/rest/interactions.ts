import { bundleInteraction } from './bundle.ts';
import { remove } from './delete.ts';
import { read, vread } from './read.ts';
import { report } from './report.ts';
import type { Interaction } from './request.ts';
import { history, search } from './search.ts';
import { conditionalUpdate, create, update } from './write.ts';

/** Every interaction and operation the server performs, by the name routes declare. */
export const INTERACTIONS: Readonly<Record<string, Interaction>> = {
  read,
  vread,
  create,
  update,
  'conditional-update': conditionalUpdate,
  delete: remove,
  'history-instance': history,
  'history-type': history,
  'search-type': search,
  $report: report,
  bundle: bundleInteraction(() => INTERACTIONS),
};
