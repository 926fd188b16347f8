/*
 * The entry class of a lern-beam pipeline jar submitted to the local Flink session cluster.
 *
 * Beam's Python FlinkRunner (flink_submit_uber_jar) copies a jar, adds the pipeline under
 * BEAM-PIPELINE/ and uploads it to the JobManager, which runs its entry class. Beam's own entry
 * class (FlinkPipelineRunner.main) reads BEAM-PIPELINE/ through the class loader of Beam's
 * classes, so it only works when the whole runner (~190 MB) is inside the submitted jar, and a
 * session TaskManager then loads all of it again for every job until its metaspace is full. Here
 * the runner is on the cluster's class path, and this class, the only class in the submitted jar,
 * reads the pipeline through its own (the job's) class loader instead. Artifacts staged inside
 * the jar (classpath:// URLs, which TaskManagers could not read through Beam's class loader either)
 * are extracted to --artifacts-dir, a directory every JobManager and TaskManager of the cluster can
 * read (local disk here), and referenced as files.
 */
package org.sunbird.lern.beam;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.apache.beam.model.jobmanagement.v1.ArtifactApi;
import org.apache.beam.model.pipeline.v1.RunnerApi;
import org.apache.beam.runners.flink.FlinkPipelineOptions;
import org.apache.beam.runners.flink.FlinkPipelineRunner;
import org.apache.beam.runners.fnexecution.provisioning.JobInfo;
import org.apache.beam.sdk.io.FileSystems;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.util.construction.BeamUrns;
import org.apache.beam.sdk.util.construction.PipelineOptionsTranslation;
import org.apache.beam.vendor.grpc.v1p60p1.com.google.protobuf.Struct;
import org.apache.beam.vendor.grpc.v1p60p1.com.google.protobuf.util.JsonFormat;

public final class ClusterJarRunner {
  private static final String ROOT = "BEAM-PIPELINE/";
  private static final String CLASSPATH = "classpath://";

  private ClusterJarRunner() {}

  public static void main(String[] args) throws Exception {
    String artifactsDir = System.getProperty("java.io.tmpdir") + "/lern-beam-artifacts";
    String confDir = null;
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (args[i].equals("--artifacts-dir")) {
        artifactsDir = args[i + 1];
      } else if (args[i].equals("--flink-conf-dir")) {
        confDir = args[i + 1];
      } else {
        throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    FileSystems.setDefaultPipelineOptions(PipelineOptionsFactory.create());
    ClassLoader loader = ClusterJarRunner.class.getClassLoader();

    String manifest = read(loader, ROOT + "pipeline-manifest.json");
    String jobName =
        manifest.replaceAll("(?s).*\"defaultJobName\"\\s*:\\s*\"([^\"]+)\".*", "$1");
    RunnerApi.Pipeline.Builder pipeline = RunnerApi.Pipeline.newBuilder();
    JsonFormat.parser().merge(read(loader, ROOT + jobName + "/pipeline.json"), pipeline);
    Struct.Builder options = Struct.newBuilder();
    JsonFormat.parser().merge(read(loader, ROOT + jobName + "/pipeline-options.json"), options);

    FlinkPipelineOptions flinkOptions =
        PipelineOptionsTranslation.fromProto(options.build()).as(FlinkPipelineOptions.class);
    String invocationId = flinkOptions.getJobName() + "_" + UUID.randomUUID();
    extractArtifacts(loader, pipeline, Paths.get(artifactsDir, invocationId));

    String retrievalToken =
        ArtifactApi.CommitManifestResponse.Constants.NO_ARTIFACTS_STAGED_TOKEN
            .getValueDescriptor()
            .getOptions()
            .getExtension(RunnerApi.beamConstant);
    FlinkPipelineRunner runner =
        new FlinkPipelineRunner(flinkOptions, confDir, Collections.emptyList());
    JobInfo jobInfo =
        JobInfo.create(
            invocationId,
            flinkOptions.getJobName(),
            retrievalToken,
            PipelineOptionsTranslation.toProto(flinkOptions));
    runner.run(pipeline.build(), jobInfo);
  }

  private static String read(ClassLoader loader, String resource) throws Exception {
    try (InputStream in = loader.getResourceAsStream(resource)) {
      if (in == null) {
        throw new IllegalStateException("Resource " + resource + " not found in the submitted jar");
      }
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  private static void extractArtifacts(
      ClassLoader loader, RunnerApi.Pipeline.Builder pipeline, Path dir) throws Exception {
    String urlType = BeamUrns.getUrn(RunnerApi.StandardArtifacts.Types.URL);
    String fileType = BeamUrns.getUrn(RunnerApi.StandardArtifacts.Types.FILE);
    RunnerApi.Components.Builder components = pipeline.getComponentsBuilder();
    Map<String, RunnerApi.Environment> envs = components.getEnvironmentsMap();
    for (Map.Entry<String, RunnerApi.Environment> env : new ArrayList<>(envs.entrySet())) {
      List<RunnerApi.ArtifactInformation> deps = new ArrayList<>();
      int n = 0;
      for (RunnerApi.ArtifactInformation dep : env.getValue().getDependenciesList()) {
        // Python stages them as FILE artifacts whose path is a classpath:// URL.
        String location;
        String sha256;
        if (dep.getTypeUrn().equals(urlType)) {
          RunnerApi.ArtifactUrlPayload url =
              RunnerApi.ArtifactUrlPayload.parseFrom(dep.getTypePayload());
          location = url.getUrl();
          sha256 = url.getSha256();
        } else if (dep.getTypeUrn().equals(fileType)) {
          RunnerApi.ArtifactFilePayload file =
              RunnerApi.ArtifactFilePayload.parseFrom(dep.getTypePayload());
          location = file.getPath();
          sha256 = file.getSha256();
        } else {
          deps.add(dep);
          continue;
        }
        if (!location.startsWith(CLASSPATH)) {
          deps.add(dep);
          continue;
        }
        String resource = location.substring(CLASSPATH.length());
        Path target = dir.resolve(env.getKey().replaceAll("[^A-Za-z0-9_.-]", "_") + "-" + n++);
        Files.createDirectories(dir);
        try (InputStream in = loader.getResourceAsStream(resource)) {
          if (in == null) {
            throw new IllegalStateException("Artifact " + resource + " not found in the submitted jar");
          }
          Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
        }
        deps.add(
            dep.toBuilder()
                .setTypeUrn(fileType)
                .setTypePayload(
                    RunnerApi.ArtifactFilePayload.newBuilder()
                        .setPath(target.toString())
                        .setSha256(sha256)
                        .build()
                        .toByteString())
                .build());
      }
      components.putEnvironments(
          env.getKey(), env.getValue().toBuilder().clearDependencies().addAllDependencies(deps).build());
    }
  }
}
