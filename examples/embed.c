/* Embedding tlsframe in a C application.
 *
 * One process runs a server pipeline (test pattern -> JPEG -> tlsframesink on
 * a free port) and a client pipeline (tlsframesrc -> JPEG decoder) that
 * receives N frames. It prints the server's client-added and client-removed
 * signals and reads its statistics: the "stats" property (all clients) and
 * the "get-stats" action signal (one client).
 *
 *   tlsframe-embed CERT_DIR [FRAMES]
 *
 * CERT_DIR holds ca.pem, server.pem and server.key, as `tlsframe certs --out
 * CERT_DIR` makes them. The tlsframe plugin must be installed or on
 * GST_PLUGIN_PATH. Exit status 0 when every frame arrived and the client was
 * added and removed.
 */
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
  GMainLoop *loop;
  GstElement *server, *client, *sink;
  GMutex lock;       /* protects client_id (set on the signal thread) */
  guint64 client_id; /* last client added, 0 = none */
  gboolean added, removed, received;
} App;

/* client-added and client-removed come from the sink's own signal thread:
 * print there (stdio is thread-safe) and hand the rest to the main loop. */
static void on_client_added(G_GNUC_UNUSED GstElement *sink, guint64 id, const gchar *address,
                            const gchar *subject, gpointer data) {
  App *app = data;
  printf("client-added: id=%" G_GUINT64_FORMAT " address=%s subject='%s'\n", id, address,
         subject);
  fflush(stdout);
  g_mutex_lock(&app->lock);
  app->client_id = id;
  g_mutex_unlock(&app->lock);
  app->added = TRUE;
}

static gboolean quit_idle(gpointer data) {
  g_main_loop_quit(((App *)data)->loop);
  return G_SOURCE_REMOVE;
}

static void on_client_removed(G_GNUC_UNUSED GstElement *sink, guint64 id, const gchar *address, gint status,
                              const gchar *error, gpointer data) {
  App *app = data;
  GEnumClass *klass = g_type_class_ref(g_type_from_name("GstTlsFrameClientStatus"));
  GEnumValue *v = klass ? g_enum_get_value(klass, status) : NULL;
  printf("client-removed: id=%" G_GUINT64_FORMAT " address=%s status=%s%s%s\n", id, address,
         v ? v->value_nick : "?", *error ? " error=" : "", error);
  fflush(stdout);
  if (klass) g_type_class_unref(klass);
  app->removed = TRUE;
  g_idle_add(quit_idle, app); /* the example ends once its client has gone */
}

static void print_stats(App *app) {
  GstStructure *all = NULL, *one = NULL;
  guint64 clients = 0, published = 0, bytes = 0;
  g_object_get(app->sink, "stats", &all, NULL);
  gst_structure_get_uint64(all, "clients", &clients);
  gst_structure_get_uint64(all, "buffers-published", &published);
  gst_structure_get_uint64(all, "bytes-sent", &bytes);
  printf("stats: clients=%" G_GUINT64_FORMAT " buffers-published=%" G_GUINT64_FORMAT
         " bytes-sent=%" G_GUINT64_FORMAT "\n",
         clients, published, bytes);
  gst_structure_free(all);

  g_mutex_lock(&app->lock);
  guint64 id = app->client_id;
  g_mutex_unlock(&app->lock);
  g_signal_emit_by_name(app->sink, "get-stats", id, &one);
  if (one) {
    guint64 sent = 0, dropped = 0;
    gst_structure_get_uint64(one, "frames-sent", &sent);
    gst_structure_get_uint64(one, "frames-dropped", &dropped);
    printf("client %" G_GUINT64_FORMAT ": frames-sent=%" G_GUINT64_FORMAT
           " frames-dropped=%" G_GUINT64_FORMAT "\n",
           id, sent, dropped);
    gst_structure_free(one);
  }
  fflush(stdout);
}

static gboolean on_bus(G_GNUC_UNUSED GstBus *bus, GstMessage *msg, gpointer data) {
  App *app = data;
  switch (GST_MESSAGE_TYPE(msg)) {
    case GST_MESSAGE_ERROR: {
      GError *err = NULL;
      gst_message_parse_error(msg, &err, NULL);
      fprintf(stderr, "error from %s: %s\n", GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)), err->message);
      g_clear_error(&err);
      g_main_loop_quit(app->loop);
      break;
    }
    case GST_MESSAGE_EOS:
      /* The client got its N frames: read the server's stats, then drop the client. */
      if (GST_MESSAGE_SRC(msg) == GST_OBJECT(app->client)) {
        app->received = TRUE;
        print_stats(app);
        gst_element_set_state(app->client, GST_STATE_NULL);
      }
      break;
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

int main(int argc, char **argv) {
  App app = {0};
  gst_init(&argc, &argv);
  if (argc < 2) {
    fprintf(stderr, "usage: %s CERT_DIR [FRAMES]\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  int frames = argc > 2 ? atoi(argv[2]) : 30;

  gchar *desc = g_strdup_printf(
      "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! jpegenc ! "
      "tlsframesink name=sink host=127.0.0.1 port=0 cert-file=\"%s/server.pem\" "
      "key-file=\"%s/server.key\"",
      dir, dir);
  GError *err = NULL;
  app.server = gst_parse_launch(desc, &err);
  g_free(desc);
  if (!app.server) {
    fprintf(stderr, "server pipeline: %s\n", err->message);
    return 1;
  }
  app.sink = gst_bin_get_by_name(GST_BIN(app.server), "sink");
  g_signal_connect(app.sink, "client-added", G_CALLBACK(on_client_added), &app);
  g_signal_connect(app.sink, "client-removed", G_CALLBACK(on_client_removed), &app);
  if (gst_element_set_state(app.server, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    fprintf(stderr, "the server did not start (certificates in %s?)\n", dir);
    return 1;
  }
  gint port = 0;
  g_object_get(app.sink, "current-port", &port, NULL);
  printf("server listening on port %d\n", port);

  desc = g_strdup_printf(
      "tlsframesrc host=127.0.0.1 port=%d ca-file=\"%s/ca.pem\" num-buffers=%d ! jpegdec ! "
      "fakesink",
      port, dir, frames);
  app.client = gst_parse_launch(desc, &err);
  g_free(desc);
  if (!app.client) {
    fprintf(stderr, "client pipeline: %s\n", err->message);
    return 1;
  }
  app.loop = g_main_loop_new(NULL, FALSE);
  GstBus *bus = gst_element_get_bus(app.server);
  gst_bus_add_watch(bus, on_bus, &app);
  gst_object_unref(bus);
  bus = gst_element_get_bus(app.client);
  gst_bus_add_watch(bus, on_bus, &app);
  gst_object_unref(bus);
  gst_element_set_state(app.client, GST_STATE_PLAYING);

  g_main_loop_run(app.loop);

  gst_element_set_state(app.client, GST_STATE_NULL);
  gst_element_set_state(app.server, GST_STATE_NULL);
  gst_object_unref(app.sink);
  gst_object_unref(app.client);
  gst_object_unref(app.server);
  g_main_loop_unref(app.loop);
  gboolean ok = app.added && app.removed && app.received;
  printf("%s\n", ok ? "done" : "incomplete");
  return ok ? 0 : 1;
}
