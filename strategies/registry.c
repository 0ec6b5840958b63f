/* The strategies by name, in the order reports list them. */
#include "strategies/strategy.h"

#include <string.h>

/* Defined next to each planner. */
extern const Strategy STRATEGY_NAIVE, STRATEGY_SORTED, STRATEGY_PACKING, STRATEGY_PACKING_LW,
    STRATEGY_PACKING_BFD, STRATEGY_PACKING_BALANCED, STRATEGY_PACKING_FAIR;

const Strategy *const STRATEGIES[] = {
    &STRATEGY_NAIVE, &STRATEGY_SORTED, &STRATEGY_PACKING, &STRATEGY_PACKING_LW,
    &STRATEGY_PACKING_BFD, &STRATEGY_PACKING_BALANCED, &STRATEGY_PACKING_FAIR,
};
const int N_STRATEGIES = (int)(sizeof STRATEGIES / sizeof STRATEGIES[0]);

const Strategy *strategy_find(const char *name)
{
    if (!name) return NULL;
    for (int i = 0; i < N_STRATEGIES; i++)
        if (strcmp(STRATEGIES[i]->name, name) == 0) return STRATEGIES[i];
    return NULL;
}
