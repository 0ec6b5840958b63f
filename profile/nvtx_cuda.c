/* NVTX3 ranges and marks in the "labench" domain. NVTX3 is header-only: with no tool attached
 * each call is a cheap no-op. A tool attaches through NVTX_INJECTION64_PATH (Nsight Systems
 * sets it; prof_cupti_start sets it to CUPTI at PROF_FULL), read on the first NVTX call. */
#include "profile/nvtx.h"

#include <nvtx3/nvToolsExt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Registered strings spare the tool a string copy per event; names beyond the cache go as
 * plain ASCII messages, which every tool also accepts. */
#define NAME_CACHE 64

static pthread_once_t domain_once = PTHREAD_ONCE_INIT;
static nvtxDomainHandle_t domain;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char *name;
    nvtxStringHandle_t handle;
} cache[NAME_CACHE];
static int ncache;

static void create_domain(void)
{
    domain = nvtxDomainCreateA("labench");
}

static void fill_attributes(nvtxEventAttributes_t *a, const char *name)
{
    pthread_once(&domain_once, create_domain);
    memset(a, 0, sizeof *a);
    a->version = NVTX_VERSION;
    a->size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
    a->messageType = NVTX_MESSAGE_TYPE_ASCII;
    a->message.ascii = name ? name : "";
    if (!name) return;

    pthread_mutex_lock(&cache_lock);
    int i = 0;
    while (i < ncache && strcmp(cache[i].name, name) != 0) i++;
    if (i == ncache && ncache < NAME_CACHE) {
        /* Registered once and kept for the process, like NVTX's own handle. The tool is fixed
         * at the first NVTX call, so a NULL handle (no tool) stays NULL: cache it too. */
        char *copy = strdup(name);
        if (copy) {
            cache[i].name = copy;
            cache[i].handle = nvtxDomainRegisterStringA(domain, copy);
            ncache++;
        }
    }
    if (i < ncache && cache[i].handle) {
        a->messageType = NVTX_MESSAGE_TYPE_REGISTERED;
        a->message.registered = cache[i].handle;
    }
    pthread_mutex_unlock(&cache_lock);
}

void prof_range_push(const char *name)
{
    nvtxEventAttributes_t a;
    fill_attributes(&a, name);
    nvtxDomainRangePushEx(domain, &a);
}

void prof_range_pop(void)
{
    pthread_once(&domain_once, create_domain);
    nvtxDomainRangePop(domain);
}

void prof_mark(const char *name)
{
    nvtxEventAttributes_t a;
    fill_attributes(&a, name);
    nvtxDomainMarkEx(domain, &a);
}
